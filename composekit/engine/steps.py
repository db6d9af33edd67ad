"""The steps that drive a stack with the engine: build, volume owners, migrate, start, wait healthy, down
(status: engine/status.py). composekit.deploy.up() runs them in order, then smoke.

Nothing here deletes a volume unless the caller passed ``delete_volumes=True``.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config.project import Project
from ..errors import (
    ConfigError,
    DockerError,
    HealthTimeoutError,
    MigrationError,
    PortInUseError,
)
from ..render.companions import SCHEDULER_STATE_DIR, SCHEDULER_STATE_VOLUME, accessory_secret_values
from ..render.compose import FILES_SERVICE
from ..render.names import FILES_DIR, app_image
from ..render.secrets import (
    DB_PASSWORD_ENV,
    SECRETS_VERSION_ENV,
    app_secret_env,
    needs_secret_env,
    secret_env_command,
    secrets_version,
)
from ..render.stack import COMPOSE_FILE, render_stack
from .docker import ContainerInfo, Docker, LineSink
from .log_hints import quote_log, read_only_hint
from .migration_state import parse_alembic_current, state_command
from .ports import port_is_free, server_ports_free
from .target import Engine
from .wait import Deadline, Poll, Progress, poll_until

__all__ = [
    "MIGRATE",
    "by_service",
    "check_ports",
    "compose_secrets",
    "deliver_files",
    "docker_for",
    "down",
    "fix_volume_owners",
    "migrate",
    "read_migration_state",
    "read_only_docker",
    "wait_healthy",
]

MIGRATE = "migrate"
STATE_TIMEOUT = 60.0  # seconds the migration state read may take (at most what is left of the deadline)


def docker_for(project: Project, engine: Engine | None = None) -> Docker:
    files = [project.out_dir / COMPOSE_FILE]
    if project.override_file is not None:
        files.append(project.override_file)
    return Docker(project.config.name, files, engine=engine)


def compose_secrets(project: Project) -> dict[str, str]:
    """The environment `docker compose up` reads the stack's secrets from: the database password and app/secrets,
    read from their files here, on the deploying machine, and given to the Compose process only; and the version
    of the values the app gets in its environment (render/secrets.py SECRETS_VERSION_ENV)."""
    config = project.config
    files = {DB_PASSWORD_ENV: ("database/password_file", config.database.password_file)} if config.database else {}
    files.update({app_secret_env(n): (f"app/secrets/{n}", v) for n, v in sorted(config.app.secrets.items())})
    values = {variable: _read_secret(project, key, value) for variable, (key, value) in files.items()}
    if needs_secret_env(config):
        values[SECRETS_VERSION_ENV] = secrets_version(config, values)
    values.update(accessory_secret_values(config, lambda key, value: _read_secret(project, key, value)))
    return values


def _read_secret(project: Project, key: str, value: str) -> str:
    path = project.from_root(value)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
        source = " + ".join(p.name for p in project.config_files)
        raise ConfigError([f'{source}: {key}: cannot read "{value}" ({path}): {reason}']) from None


@contextmanager
def read_only_docker(project: Project, engine: Engine | None = None) -> Iterator[Docker]:
    """Docker for commands that must not write the project (down, logs): the compose file is rendered into a
    temporary directory, and Compose resolves its relative paths from the output directory as usual
    (--project-directory), whether or not that directory exists."""
    with tempfile.TemporaryDirectory(prefix="composekit-") as tmp:
        compose = Path(tmp) / COMPOSE_FILE
        compose.write_text(render_stack(project).compose, encoding="utf-8")
        files = [compose] + ([project.override_file] if project.override_file is not None else [])
        yield Docker(project.config.name, files, project_directory=project.out_dir, engine=engine)


def by_service(containers: list[ContainerInfo]) -> dict[str, ContainerInfo]:
    return {c.service: c for c in containers}


def check_ports(project: Project, running: dict[str, ContainerInfo], docker: Docker | None = None) -> None:
    """Refuse to start when another process holds ports/http or ports/https (our own running Traefik may).
    On a remote engine the ports are tested on its machine, by a throwaway container of images/python."""
    traefik = running.get("traefik")
    if traefik is not None and traefik.status == "running":
        return  # our own Traefik holds the ports; compose keeps or replaces it
    ports = (project.config.ports.http, project.config.ports.https)
    port_free: Callable[[int], bool] = port_is_free
    where = ""
    if docker is not None and docker.engine.is_remote:
        port_free = server_ports_free(docker.run_python, project.config.images.python, ports)
        where = f" on the server ({docker.engine.target.url})"
    for key, port in zip(("http", "https"), ports, strict=True):
        try:
            free = port_free(port)
        except OSError as exc:
            raise PortInUseError(
                f"cannot test port {port} (ports/{key} in {project.source}){where}: {exc.strerror}. "
                "Nothing was started or changed."
            ) from None
        if not free:
            raise PortInUseError(
                f"port {port} (ports/{key} in {project.source}) is already in use{where} by another process, so "
                f"Traefik cannot publish it; stop that process (`ss -ltnp 'sport = :{port}'` shows it) or choose "
                f"another port under ports/{key}. Nothing was started or changed."
            )


# Runs in a throwaway container of the app image, as root with only CAP_CHOWN: gives each volume's top
# directory to the image's user when another user owns it. Never recursive, never deletes anything.
_CHOWN_TOPS = (
    "import grp, os, pwd, sys\n"
    "name, _, group = sys.argv[1].partition(':')\n"
    "try:\n"
    "    pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)\n"
    "    uid, gid = pw.pw_uid, pw.pw_gid\n"
    "except KeyError:\n"
    "    if not name.isdigit():\n"
    "        sys.exit(f'user {name} is not in the image\\'s /etc/passwd')\n"
    "    uid, gid = int(name), 0\n"
    "if group:\n"
    "    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid\n"
    "for path in sys.argv[2:]:\n"
    "    st = os.stat(path)\n"
    "    if st.st_uid == uid:\n"
    "        print('kept', path)\n"
    "    else:\n"
    "        os.chown(path, uid, gid)\n"
    "        print('chowned', path, f'{st.st_uid}:{st.st_gid}', f'{uid}:{gid}')\n"
)


def fix_volume_owners(project: Project, docker: Docker, report: Progress = lambda _: None) -> list[str]:
    """Make each app volume's top directory belong to the image's user, whatever Dockerfile built the image.

    A volume mounted where the image has no directory (an app Dockerfile that never created it, or a volume
    added after `init` wrote the Dockerfile) starts owned by root, and a non-root app cannot write to it.
    Missing volumes are created first, labelled as Compose labels its own. Returns the volumes changed.
    """
    config = project.config
    volumes = dict(config.app.volumes)
    if config.schedules:  # the scheduler's lock and state.json (render/companions.py)
        volumes[SCHEDULER_STATE_VOLUME] = SCHEDULER_STATE_DIR
    if not volumes:
        return []
    image = app_image(config)
    user = docker.image_user(image)
    if user.partition(":")[0] in ("", "root", "0"):
        return []
    mounts = {docker.ensure_volume(name): target for name, target in sorted(volumes.items())}
    by_path = {target: volume for volume, target in mounts.items()}
    changed = []
    for line in docker.run_chown(image, ["-c", _CHOWN_TOPS, user, *mounts.values()], mounts).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "chowned" and parts[1] in by_path:
            changed.append(by_path[parts[1]])
            report(
                f"volume {by_path[parts[1]]}: gave its top directory {parts[1]} to the app's user {user} "
                f"(uid:gid {parts[2]} -> {parts[3]}); nothing inside it was changed"
            )
    return changed


def deliver_files(docker: Docker, deadline: Deadline, report: Progress, on_line: LineSink | None) -> None:
    """Run the one-shot `files` service (gunicorn.conf.py and the database password into the `files` volume) and
    wait until it exited 0: the app's containers are started without their dependencies (--no-deps)."""
    report("delivering gunicorn.conf.py and the database password into the files volume")
    started = deadline.clock()
    docker.up([FILES_SERVICE], dependencies=False, on_line=on_line)

    seen, timed_out = _wait_exited(docker, FILES_SERVICE, deadline)
    if timed_out:
        raise HealthTimeoutError(
            f"{deadline.ran_out('the files service ran', started)}; it was still {seen.detail}.\n"
            f"Last log lines of {FILES_SERVICE}:\n{quote_log(docker.logs([FILES_SERVICE], tail=30))}\n"
            "fix: check that the engine can start images/python, or raise --timeout"
        )
    c = seen.value
    if c is not None and c.exit_code not in (0, None):
        raise DockerError(
            f"the {FILES_SERVICE} service failed (exit code {c.exit_code}), so the app was not started",
            ["docker", "compose", "up", FILES_SERVICE],
            docker.logs([FILES_SERVICE], tail=30),
            "its output is above; run `composekit up` again once the cause is fixed",
        )


def _wait_exited(docker: Docker, service: str, deadline: Deadline) -> tuple[Poll[ContainerInfo | None], bool]:
    """Poll a one-shot service until its container exited (or the deadline passed)."""

    def observe() -> Poll[ContainerInfo | None]:
        c = by_service(docker.containers()).get(service)
        return Poll(c, c is not None and c.status == "exited", False, c.status if c else "no container")

    return deadline.poll(observe)


def migrate(
    project: Project,
    docker: Docker,
    before: dict[str, ContainerInfo],
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
) -> None:
    """Run the one-shot migration (and what it depends on, a database say) without touching the app.

    Only once it exited 0 is the app recreated: a failing migration leaves a running app serving.
    """
    report("running the migration")
    started = deadline.clock()
    try:
        docker.up([MIGRATE], on_line=on_line)
    except DockerError as exc:
        _raise_if_migration_failed(project, docker, before, exc)
        raise

    seen, timed_out = _wait_exited(docker, MIGRATE, deadline)
    if timed_out:
        raise HealthTimeoutError(
            f"{deadline.ran_out('the migration ran', started)}; the migration was still {seen.detail} and the "
            f"app was not touched.\n"
            f"Last log lines of migrate:\n{quote_log(docker.logs([MIGRATE], tail=30))}\n"
            "fix: make the migration finish (is it waiting for a database?) or raise --timeout"
        )
    _raise_if_migration_failed(project, docker, before, None)


def read_migration_state(project: Project, docker: Docker, deadline: Deadline, report: Progress) -> str | None:
    """The database's migration state once the migration exited 0, read on the same (new) image: migrate/
    state_command, or `alembic current` derived from migrate/command, in a one-shot container of the migrate
    service. None when there is no such command, or it failed: the migration did its work, so the deploy goes
    on and the release records the state as unknown (the warning says why)."""
    command = state_command(project.config.migrate)
    if command is None:
        return None
    shown = shlex.join(command.argv)
    name = f"{project.config.name}-{MIGRATE}-state"

    def find() -> ContainerInfo | None:
        return next((c for c in docker.containers() if c.name == name), None)

    def observe() -> Poll[ContainerInfo | None]:
        c = find()
        return Poll(c, c is not None and c.status == "exited", c is None, c.status if c else "its container is gone")

    if find() is not None:
        docker.remove_now(name)  # left by an interrupted deploy
    report(f"reading the migration state (`{shown}`)")
    limit = min(deadline.remaining(), STATE_TIMEOUT)
    try:
        docker.run_one_off(MIGRATE, secret_env_command(project.config, list(command.argv), FILES_DIR), name)
        seen, _ = poll_until(observe, limit, clock=deadline.clock, sleep=deadline.sleep)
        c = seen.value
        if not seen.done or c is None:
            why = f"it did not exit within {limit:.0f}s; last seen: {seen.detail}"
        elif c.exit_code not in (0, None):
            stdout, stderr = docker.container_output(name)
            last = (stderr.strip() or stdout.strip()).splitlines()[-1:]
            why = f"it exited {c.exit_code}" + (f": {last[0].strip()}" if last else "")
        else:
            stdout, _ = docker.container_output(name)
            state = parse_alembic_current(stdout) if command.alembic else (stdout.strip() or None)
            if state is None:
                report(f"`{shown}` printed no migration state; the release records it as unknown")
            else:
                report(f"migration state: {state}")
            return state
    except DockerError as exc:
        why = exc.summary
    finally:
        if find() is not None:
            docker.remove_now(name)
    report(f"warning: could not read the migration state with `{shown}` ({why}); the release records it as unknown")
    return None


def _raise_if_migration_failed(
    project: Project, docker: Docker, before: dict[str, ContainerInfo], exc: DockerError | None
) -> None:
    migrate = by_service(docker.containers()).get(MIGRATE)
    if migrate is None or migrate.status != "exited" or migrate.exit_code in (0, None):
        return
    logs = docker.logs([MIGRATE], tail=40)
    app_before = before.get("app")
    if app_before is not None and app_before.status == "running":
        kept = "The app that was running before is untouched and still serving."
    else:
        # First deploy: stop what this `up` started so nothing half-started is left. Volumes stay.
        docker.down(delete_volumes=False)
        kept = "Nothing was left running; volumes (data, acme.json) are kept."
    raise MigrationError(
        f"the migration failed (exit code {migrate.exit_code}), so the app was not started. {kept}",
        exc.command if exc is not None else ["docker", "compose", "up", MIGRATE],
        logs,
        read_only_hint(logs, project.config.app.read_only)
        or "fix the migration (its output is above) and run `composekit up` again",
    )


def wait_healthy(docker: Docker, services: list[str], deadline: Deadline) -> list[ContainerInfo]:
    """Poll until every service runs healthy; fail early on a container that exited or keeps restarting."""
    started = deadline.clock()

    def observe() -> Poll[tuple[list[ContainerInfo], str | None]]:
        containers = docker.containers()
        found = by_service(containers)
        waiting: list[str] = []
        culprit: str | None = None
        for name in services:
            c = found.get(name)
            if c is None:
                return Poll((containers, name), False, True, f"{name}: no container was created")
            if c.status == "exited" or c.restart_count >= 3:
                return Poll(
                    (containers, name),
                    False,
                    True,
                    f"{name}: {c.status} (exit code {c.exit_code}, restarted {c.restart_count} times)",
                )
            if c.status != "running" or c.health not in (None, "healthy"):
                waiting.append(f"{name}: {c.status}, health {c.health or 'n/a'}")
                if culprit is None or c.restart_count or c.health == "unhealthy":
                    culprit = name
        return Poll((containers, culprit), not waiting, False, "; ".join(waiting))

    seen, timed_out = deadline.poll(observe)
    containers, failing = seen.value
    if seen.done:
        return containers
    failing = failing or services[-1]
    logs = docker.logs([failing], tail=30)
    what = (
        f"the stack did not become healthy: {deadline.ran_out('waiting for it', started)}"
        if timed_out
        else "the stack stopped while starting"
    )
    raise HealthTimeoutError(
        f"{what}. Last status: {seen.detail}\n"
        f"Last log lines of {failing}:\n{quote_log(logs)}\n"
        f"fix: check that {failing} starts and, for the app, that its health path answers 200 "
        f"(`composekit logs {failing}`); volumes are kept, nothing was deleted"
    )


def down(
    project: Project, *, delete_volumes: bool = False, on_line: LineSink | None = None, engine: Engine | None = None
) -> list[str]:
    """Stop and remove the stack's containers; returns the volumes that are kept (or were deleted)."""
    with read_only_docker(project, engine) as docker:
        volumes = docker.volumes()
        if project.config.edge == "shared":
            from .edge import detach_app  # edge imports steps: imported here, no cycle

            # Before the stack's network goes: Docker removes no network that a container still uses.
            detach_app(project, docker.engine, on_line or (lambda _: None))
        docker.down(delete_volumes=delete_volumes, on_line=on_line)
    return volumes
