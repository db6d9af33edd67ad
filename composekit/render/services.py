"""The app's services described once, for both modes: ServiceSpec, built from the project by app_services, and
translated to each mode's syntax by render/compose.py (compose.yaml) and render/swarm.py (stack.yml, migrate.yml).

What a service is (its image, command, environment, secrets, volumes, limits, healthcheck, user, confinement,
networks, what it waits for) is decided here; a renderer only says how its mode writes that (`deploy:` sections,
Swarm configs or the `files` volume, restart policies). What the modes do differently for the app's containers
comes in as ModeFacts (where secret files are mounted, whose proxy headers are trusted, the app's server process).

Every process of the app's image is built from the same base (_process), so the migration sees exactly the app's
environment, secrets, volumes, limits, user and confinement: only its command differs, and it runs once instead of
serving. Another process of the app (a worker, say) is one more _process; another image (an accessory) is one more
ServiceSpec as database_spec builds one, with a role the renderers know. The stack's own plumbing (Traefik, the
routes and files containers of compose mode, Swarm's socket proxy) is each mode's own and stays in its renderer."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..config.environment import WORKER_VARIABLES
from ..config.model import DATABASE_VOLUME, Config
from ..config.project import Project
from .names import (
    APP_SERVICE,
    APP_START_PERIOD,
    DB_PORT,
    DB_SERVICE,
    GRACEFUL_TIMEOUT,
    HEALTH_INTERVAL,
    MIGRATE_SERVICE,
    POSTGRES_DATA,
    app_image,
)
from .secrets import DB_SECRET, SECRET_ENV, needs_secret_env, secret_env_command, secret_names

__all__ = [
    "ModeFacts",
    "Role",
    "ServiceSpec",
    "Wait",
    "app_environment",
    "app_healthcheck",
    "app_limits",
    "app_services",
    "database_spec",
    "http_probe",
    "logging_options",
    "memory_limit",
    "traefik_healthcheck",
    "worker_process",
]

# web: the app, which Traefik routes the domain to; job: runs once per release before the app changes (the
# migration); database: holds its data in a node-local volume (one container, stopped before its replacement).
# worker: another long-running command of the app's image (processes/: a queue worker), no port, no front network.
Role = Literal["web", "job", "database", "worker"]

# What a service waits for before it starts (compose mode's depends_on; Swarm has none: the deploy runs the job
# first, and the app's healthcheck holds it back until the database answers).
Wait = Literal["healthy", "completed", "started"]


@dataclass(frozen=True)
class ModeFacts:
    """What the app's containers see differently in each mode."""

    secrets_dir: str  # where the secret files are: the files volume (compose), /run/secrets (Swarm)
    forwarded_allow_ips: str  # whose proxy headers the app trusts
    server_command: list[str]  # the app's server process
    server_files: tuple[str, ...]  # composekit's files the server reads (gunicorn.conf.py, uvicorn_drain.py)
    server_variables: dict[str, str] = field(default_factory=dict)  # the server's own (DRAIN_SECONDS): the app's only
    drain_seconds: int = 0  # how long a stopping app container keeps serving before its graceful stop


@dataclass(frozen=True)
class ServiceSpec:
    """One service, whatever the mode."""

    name: str
    role: Role
    image: str
    release: bool  # runs the app's image (compose: built here, never pulled; Swarm: the release's tag)
    command: list[str] | None
    environment: dict[str, str]
    env_file: list[str] = field(default_factory=list)  # relative to the output directory
    secrets: list[str] = field(default_factory=list)
    files: tuple[str, ...] = ()  # composekit's files it reads (names in RenderedStack.configs / swarm/)
    volumes: list[tuple[str, str]] = field(default_factory=list)  # named volumes: (name, target)
    healthcheck: dict[str, Any] | None = None
    stop_grace_period: int | None = None  # seconds
    limits: dict[str, str | int] = field(default_factory=dict)  # deploy.resources.limits
    user: str | None = None  # None: the image's
    read_only: bool = False  # a read-only root with a tmpfs /tmp
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    no_new_privileges: bool = True
    networks: list[str] = field(default_factory=list)
    placement: list[str] = field(default_factory=list)  # Swarm placement constraints
    waits_for: dict[str, Wait] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    replicas: int | None = None  # None: the mode's default (compose: 1; Swarm: the web role's own)


def _size(value: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


def logging_options(config: Config) -> dict[str, Any]:
    """Rotation for every service: without it a chatty container fills the engine's disk."""
    log = config.logging
    return {"driver": log.driver, "options": {"max-size": _size(log.max_size), "max-file": str(log.max_file)}}


def http_probe(port: int, path: str) -> list[str]:
    """A healthcheck's test: GET http://127.0.0.1:<port><path> answers 200 (python3, no curl in the images).

    An HTTP/1.0 request on a plain socket, in `python3 -I -S` (no site-packages, no environment): the engine runs it
    in the container every few seconds for as long as the stack runs, and urllib's imports made each run cost ~55 ms
    of CPU against ~22 ms. Redirects are not followed, as Traefik's and smoke's health requests do not follow them."""
    # repr(): a Python literal of the path whatever quotes or backslashes it holds.
    probe = (
        f"import socket, sys; s = socket.create_connection(('127.0.0.1', {port}), 3); "
        f"s.sendall(b'GET ' + {path!r}.encode() + b' HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n'); "
        "sys.exit(0 if s.makefile('rb').readline().split()[1:2] == [b'200'] else 1)"
    )
    return ["CMD", "python3", "-I", "-S", "-c", probe]


def app_healthcheck(config: Config) -> dict[str, Any]:
    """The app's healthcheck (the same in compose and swarm mode): GET health_path answers 200."""
    return {
        "test": http_probe(config.app.port, config.app.health_path),
        "interval": HEALTH_INTERVAL,
        "timeout": "4s",
        "retries": 3,
        "start_period": f"{APP_START_PERIOD}s",
    }


def traefik_healthcheck() -> dict[str, Any]:
    return {
        "test": ["CMD", "traefik", "healthcheck", "--configFile=/etc/traefik/traefik.yml"],
        "interval": HEALTH_INTERVAL,
        "timeout": "3s",
        "retries": 3,
        "start_period": "10s",
    }


def memory_limit(value: int) -> str:
    mib = 1024 * 1024
    return f"{value // mib}m" if value % mib == 0 else str(value)


def app_limits(config: Config) -> dict[str, str | int]:
    """deploy.resources.limits of the app's containers: cpus and memory when configured, processes always
    (Compose refuses `pids_limit` next to other limits)."""
    app = config.app
    limits: dict[str, str | int] = {}
    if app.cpus is not None:
        limits["cpus"] = f"{app.cpus:g}"
    if app.memory is not None:
        limits["memory"] = memory_limit(app.memory)
    limits["pids"] = app.pids_limit
    return limits


def app_environment(config: Config, mode: ModeFacts) -> dict[str, str]:
    """composekit's own variables (config.APP_VARIABLES) first, then the database's, then the app's.

    A worker setting is rendered only when the config sets its key: Compose gives `environment:` precedence
    over `env_file:`, so rendering a default would silently override an env file's WORKERS_PER_CORE=3.
    """
    app = config.app
    env = {
        "APP_PORT": str(app.port),
        "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        "FORWARDED_ALLOW_IPS": mode.forwarded_allow_ips,  # proxy headers are trusted from Traefik only
    }
    values = {
        "workers_per_core": f"{app.workers_per_core:g}",
        "worker_memory": str(max(1, app.worker_memory // (1024 * 1024))),
        "max_workers": None if app.max_workers is None else str(app.max_workers),
        "workers": None if app.workers == "auto" else str(app.workers),
    }
    for variable, key in WORKER_VARIABLES.items():
        value = values[key]
        if key in app.model_fields_set and value is not None:
            env[variable] = value
    env.update(_database_environment(config, mode))
    for key in sorted(app.environment):
        env[key] = app.environment[key]
    return env


def _database_environment(config: Config, mode: ModeFacts) -> dict[str, str]:
    """How the app and the migration reach the database (database/variables); the password is never a value here."""
    db = config.database
    if db is None or db.variables == "database_url":  # DATABASE_URL: set by runtime/secret_env.py
        return {}
    if db.variables == "postgres":  # POSTGRES_PASSWORD: set by runtime/secret_env.py
        return {
            "POSTGRES_SERVER": DB_SERVICE,
            "POSTGRES_PORT": str(DB_PORT),
            "POSTGRES_DB": db.name,
            "POSTGRES_USER": db.user,
        }
    return {
        "DATABASE_HOST": DB_SERVICE,
        "DATABASE_PORT": str(DB_PORT),
        "DATABASE_NAME": db.name,
        "DATABASE_USER": db.user,
        "DATABASE_PASSWORD_FILE": f"{mode.secrets_dir}/{DB_SECRET}",
    }


def _process(project: Project, mode: ModeFacts, name: str, role: Role, argv: list[str]) -> ServiceSpec:
    """A process of the app's image: the app's environment, secrets, volumes, limits, user and confinement, so that
    the app and its migration (and any other process of the image) cannot drift apart."""
    config = project.config
    app = config.app
    return ServiceSpec(
        name=name,
        role=role,
        image=app_image(config),
        release=True,
        command=secret_env_command(config, argv, mode.secrets_dir),
        environment=app_environment(config, mode),
        env_file=[project.rel(project.from_root(app.env_file))] if app.env_file else [],
        secrets=secret_names(config),
        files=(SECRET_ENV,) if needs_secret_env(config) else (),
        volumes=sorted(app.volumes.items()),
        limits=app_limits(config),
        # No capabilities, a read-only root (processes are bounded by limits' pids).
        read_only=app.read_only,
        cap_drop=["ALL"],
        cap_add=list(app.cap_add),
        networks=["web", DB_SERVICE] if config.database is not None else ["web"],
        placement=list(app.placement),
        waits_for={DB_SERVICE: "healthy"} if config.database is not None else {},
    )


def worker_process(project: Project, mode: ModeFacts, name: str, argv: list[str]) -> ServiceSpec:
    """Another long-running command of the app's image (processes/, render/companions.py): the app's process
    without the front network (no port: nothing routes to it)."""
    base = _process(project, mode, name, "worker", argv)
    return replace(base, networks=[n for n in base.networks if n != "web"])


def _migration(project: Project, mode: ModeFacts) -> ServiceSpec:
    """The migration: the app's process with migrate/command, run once per release; never restarted (a failed
    migration stays failed: the deploy stops before the app is updated)."""
    command = project.config.migrate.command
    assert command is not None
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    return _process(project, mode, MIGRATE_SERVICE, "job", argv)


def _app(project: Project, mode: ModeFacts) -> ServiceSpec:
    """The app: its server, healthy when health_path answers; stopped after its drain and graceful timeout."""
    config = project.config
    base = _process(project, mode, APP_SERVICE, "web", mode.server_command)
    waits = dict(base.waits_for)
    if config.migrate.command is not None:
        waits[MIGRATE_SERVICE] = "completed"
    return replace(
        base,
        environment={**base.environment, **mode.server_variables},
        files=(*mode.server_files, *base.files),
        healthcheck=app_healthcheck(config),
        stop_grace_period=GRACEFUL_TIMEOUT + mode.drain_seconds + 10,
        waits_for=waits,
    )


def database_spec(config: Config) -> ServiceSpec:
    """PostgreSQL through the official image's interface; it reads the password from the secret file. Capabilities
    kept: the entrypoint starts as root, takes ownership of the data directory and switches to the postgres user (no
    setuid binary involved, so no-new-privileges holds)."""
    db = config.database
    assert db is not None
    probe = ["CMD", "pg_isready", "--host", "127.0.0.1", "--port", str(DB_PORT), "--username", db.user]
    return ServiceSpec(
        name=DB_SERVICE,
        role="database",
        image=config.images.postgres,
        release=False,
        command=None,
        environment={
            "POSTGRES_DB": db.name,
            "POSTGRES_USER": db.user,
            "POSTGRES_PASSWORD_FILE": f"/run/secrets/{DB_SECRET}",
        },
        secrets=[DB_SECRET],
        volumes=[(DATABASE_VOLUME, POSTGRES_DATA)],
        # Over TCP: the official image's first-start server listens on a socket only, so this does not report ready
        # before the real server is up.
        healthcheck={
            "test": [*probe, "--dbname", db.name],
            "interval": HEALTH_INTERVAL,
            "timeout": "3s",
            "retries": 5,
            "start_period": "60s",
        },
        stop_grace_period=30,
        networks=[DB_SERVICE],
    )


def app_services(project: Project, mode: ModeFacts) -> dict[str, ServiceSpec]:
    """The app's services by name: db and migrate when configured, then app (the order compose.yaml lists them)."""
    config = project.config
    services: dict[str, ServiceSpec] = {}
    if config.database is not None:
        services[DB_SERVICE] = database_spec(config)
    if config.migrate.command is not None:
        services[MIGRATE_SERVICE] = _migration(project, mode)
    services[APP_SERVICE] = _app(project, mode)
    return services
