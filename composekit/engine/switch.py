"""The app's release switch: start the new container beside the old, wait until it is healthy and Traefik
reaches it, move the public route to it, confirm the old one is out of rotation, then stop the old one
gracefully. Every step is gated on something observed (Docker's health, a probe through Traefik naming the
routes generation), never on a fixed sleep.

Traefik's routes live in one file in the `routes` volume (engine/routes_volume.py); each write is a new generation,
renamed into place inside the routes container, so Traefik loads the whole of it or nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config.project import Project
from ..errors import ConfigError, DockerError, HealthTimeoutError, SshError, UserError
from ..render.names import GRACEFUL_TIMEOUT, app_image
from ..render.stack import RenderedStack, render_stack
from .docker import LOG_LINES, ContainerInfo, Docker, LineSink
from .log_hints import quote_log, read_only_hint
from .probes import ProbeReport, ProbeStream, SwitchAborted, wait_generation
from .routes_volume import write_routes
from .wait import Deadline, Progress

__all__ = [
    "APP",
    "SwitchResult",
    "project_release_id",
    "release_id",
    "switch_app",
]

APP = "app"
# Hex digits of the changed files' hash in a dirty tree's release id.
DIRTY_HASH_LENGTH = 8


@dataclass(frozen=True)
class SwitchResult:
    """``serving``: the app containers now in rotation."""

    release: str
    serving: list[str]
    changed: bool
    switch_seconds: float  # new container started -> old ones removed (0 when nothing changed)
    config_hash: str = ""
    probes: ProbeReport | None = None  # the self-check, when a release was serving before
    previous_image: str | None = None  # the image that served before


def _git(app_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(app_dir), *args], capture_output=True, timeout=10)


def _changes_digest(top: Path, status: bytes) -> str:
    """A short hash of the changed files' paths and contents (``status``: `git status --porcelain -z --no-renames`):
    the same changes give the same hash, so a rebuild of identical content keeps its release id."""
    digest = hashlib.sha256()
    paths = sorted({entry[3:] for entry in status.split(b"\0") if len(entry) > 3})
    for rel in paths:
        path = top / os.fsdecode(rel)
        if path.is_symlink():
            content = b"symlink:" + os.fsencode(os.readlink(path))
        elif path.is_file():
            content = b"file:" + path.read_bytes()
        else:
            content = b"deleted" if not path.exists() else b"other"
        digest.update(rel + b"\0" + str(len(content)).encode() + b"\0" + content)
    return digest.hexdigest()[:DIRTY_HASH_LENGTH]


def release_id(
    app_dir: Path, now: Callable[[], datetime] = lambda: datetime.now(UTC), exclude: Sequence[Path] = ()
) -> str:
    """The git commit of the app's directory (short); for a tree with changes, ``<commit>-dirty-<hash of the changed
    files>``, so two different dirty builds never share an id; a UTC timestamp outside git (or without git).

    ``exclude``: paths whose changes do not count (composekit's own output: a render never makes a tree dirty)."""
    try:
        head = _git(app_dir, "rev-parse", "--short=12", "HEAD")
        commit = head.stdout.decode(errors="replace").strip()
        if head.returncode == 0 and commit:
            top = _git(app_dir, "rev-parse", "--show-toplevel")
            pathspecs = ["."]
            for path in exclude:
                rel = Path(os.path.relpath(path, app_dir)).as_posix()
                if rel != "." and not rel.startswith("../"):
                    pathspecs.append(f":(exclude,literal){rel}")
            status = _git(
                app_dir, "status", "--porcelain", "-z", "--no-renames", "--untracked-files=all", "--", *pathspecs
            )
            if status.returncode != 0 or top.returncode != 0:
                return f"{commit}-dirty"  # git could not tell: never pass for the clean commit
            if not status.stdout.strip(b"\0"):
                return commit
            return f"{commit}-dirty-{_changes_digest(Path(os.fsdecode(top.stdout.strip())), status.stdout)}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return now().strftime("%Y%m%dT%H%M%SZ")


def project_release_id(project: Project, stack: RenderedStack | None = None) -> str:
    """The release id of the project's app: composekit's output (the output directory; when that is the app's own
    directory, the files a render writes there) never counts as a change."""
    out = project.out_dir
    if stack is None:
        try:
            stack = render_stack(project)
        except ConfigError:  # doctor asks with a config that does not render: the output directory alone then
            return release_id(project.app_dir, exclude=[out])
    return release_id(project.app_dir, exclude=[out, *(out / name for name in stack.files)])


def _app_containers(docker: Docker) -> list[ContainerInfo]:
    return [c for c in docker.containers() if c.service == APP]


def _failure(docker: Docker, new: ContainerInfo) -> str | None:
    """Why the new container cannot become healthy (it exited, restarts, or Docker's healthcheck gave up on it)."""
    c = next((c for c in _app_containers(docker) if c.id == new.id), None)
    if c is None:
        return "its container disappeared"
    state = f"{c.status}, health {c.health or 'n/a'}, restarted {c.restart_count} times"
    if c.status == "exited" or c.restart_count > 0 or c.health == "unhealthy":
        return f"it failed (last seen: {state})"
    return None


def switch_app(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    release: str,
    report: Progress = lambda _: None,
    on_line: LineSink | None = None,
) -> SwitchResult:
    """Put the image just built (app_image) into rotation with no failed request, or leave the old release
    serving and raise. Nothing is recreated when the running container already runs that image and config (the
    content of its env_file included: Docker.config_hash)."""
    config = project.config
    image = app_image(config)
    new_image = docker.image_id(image)
    want_hash = docker.config_hash(APP)
    containers = _app_containers(docker)
    for c in containers:
        if c.status not in ("running", "restarting"):
            docker.remove_now(c.name)  # a leftover of an interrupted deploy: never in rotation
    old = [c for c in containers if c.status in ("running", "restarting")]
    if (
        len(old) == 1
        and old[0].image == new_image
        and docker.container_labels(old[0].name).get("com.docker.compose.config-hash") == want_hash
    ):
        generation = write_routes(project, docker, [old[0].name], [old[0].name])
        wait_generation(
            project, generation, deadline, "checking that Traefik routes to the running app", engine=docker.engine
        )
        report(f"the app already runs this image and config ({old[0].name}); nothing recreated")
        return SwitchResult(release, [old[0].name], False, 0.0, want_hash)

    started = time.monotonic()
    stream = ProbeStream(project, engine=docker.engine).start() if old else None
    try:
        return _switch(project, docker, deadline, release, report, on_line, image, want_hash, old, started, stream)
    finally:
        if stream is not None:
            stream.stop()


def _switch(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    release: str,
    report: Progress,
    on_line: LineSink | None,
    image: str,
    want_hash: str,
    old: list[ContainerInfo],
    started: float,
    stream: ProbeStream | None,
) -> SwitchResult:
    config = project.config
    report(f"starting release {release} beside {', '.join(c.name for c in old) or 'nothing'}")
    docker.start_beside(APP, len(old) + 1, on_line)
    known = {c.id for c in old}
    fresh = [c for c in _app_containers(docker) if c.id not in known]
    if len(fresh) != 1:
        raise DockerError(
            f"expected one new app container, found {len(fresh)}",
            ["docker", "compose", "ps", APP],
            "",
            "run `composekit status`; a manual `docker compose up --scale` may be in the way",
        )
    new = fresh[0]

    def give_up(why: str) -> HealthTimeoutError:
        logs = docker.final_logs(new.name, LOG_LINES)
        docker.remove_now(new.name)
        if old:
            docker.tag(old[0].image, image)  # :latest stays the image that serves
            kept = f"The release that was serving ({', '.join(c.name for c in old)}) is untouched and still serving."
        else:
            kept = "Nothing was serving before; volumes are kept."
        return HealthTimeoutError(
            f"the new release {release} ({new.name}) was removed: {why}. {kept}\n"
            f"Last log lines of {new.name}:\n{quote_log(logs)}\n"
            "fix: "
            + (
                read_only_hint(logs, config.app.read_only)
                or f"make the app start and its health path {config.app.health_path} answer 200, then run "
                "`composekit up` again"
            )
        )

    names = [c.name for c in old]
    # Healthy and routed, observed at once: its health path answers 200 through Traefik's probe route to it
    # (the public route stays on the old release). Docker's healthcheck still decides that it failed.
    report(f"waiting for {new.name} to answer its health path through Traefik")
    try:
        generation = write_routes(project, docker, names or [new.name], [new.name])
    except UserError:
        # Refused (on the shared edge: a name this routes file adds is another app's): never routed, so removed.
        docker.remove_now(new.name)
        if old:
            docker.tag(old[0].image, image)
        raise
    try:
        wait_generation(
            project,
            generation,
            deadline,
            "waiting for the new release to answer through Traefik",
            abort=lambda: _failure(docker, new),
            engine=docker.engine,
        )
    except (SwitchAborted, SshError) as exc:
        raise give_up(str(exc)) from None
    except HealthTimeoutError as exc:
        raise give_up(str(exc).splitlines()[0]) from None
    if not old:
        docker.tag(image, f"{config.name}-app:{release}")
        return SwitchResult(release, [new.name], True, time.monotonic() - started, want_hash)
    report(f"switching Traefik to {new.name}")
    generation = write_routes(project, docker, [new.name], [new.name])
    try:
        wait_generation(project, generation, deadline, "switching Traefik to the new release", engine=docker.engine)
    except (HealthTimeoutError, SshError):
        if old:
            write_routes(project, docker, names, names)
        raise
    for c in old:
        report(f"{c.name} is out of rotation; stopping it (up to {GRACEFUL_TIMEOUT}s for requests in flight)")
        docker.stop_and_remove(c.name)
    docker.tag(image, f"{config.name}-app:{release}")
    probes = stream.stop() if stream is not None else None
    return SwitchResult(
        release, [new.name], True, time.monotonic() - started, want_hash, probes, old[0].image if old else None
    )
