"""The compose file of a stack: services traefik, routes, files, app and (when configured) migrate and db, their
networks, volumes, configs and secrets. Pure: same project -> same document.

Nothing is bind-mounted from the deploying machine, so the document works unchanged against a remote engine:
every file a container needs travels inside the document (top-level `configs` with `content:`) and the database
password as a secret read from an environment variable of the Compose process (DB_PASSWORD_ENV). Compose refuses
both in a read-only container, so the read-only app and migration get theirs from the `files` volume, which the
one-shot `files` service fills from its own configs and secrets. Traefik's routes live in the `routes` volume: the
network-less `routes` container starts a fresh volume with the rendered initial routes (the domain to the app), and
`composekit up` writes each generation through `docker exec` in it. Only named volumes are mounted: nothing in
the stack mounts the Docker socket.

app/secrets travel as the database password does (a secret per variable, read from app_secret_env, copied into the
`files` volume). A variable that holds a secret (app/secrets, DATABASE_URL, POSTGRES_PASSWORD) is set by
runtime/secret_env.py, which the app's and the migration's command run first (secret_env_command): in the process
environment only, never in `environment:`."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config.environment import WORKER_VARIABLES
from ..config.model import DATABASE_VOLUME, Config
from ..config.project import Project
from .dockerfile import GUNICORN_CONF_PATH

__all__ = [
    "ACME_CA_DIR",
    "APP_SERVICE",
    "DB_PASSWORD_ENV",
    "DB_SECRET",
    "DB_SERVICE",
    "DEFAULT_SUBNET_POOL",
    "FILES_DIR",
    "FILES_SERVICE",
    "INITIAL_ROUTES",
    "RESOLVER",
    "ROUTES",
    "ROUTES_DIR",
    "ROUTES_FILE",
    "SECRETS_VERSION_ENV",
    "SECRETS_VERSION_LABEL",
    "SECRET_ENV",
    "SECRET_ENV_PATH",
    "app_image",
    "app_secret_env",
    "app_secret_name",
    "compose_variables",
    "database_url_template",
    "env_secret_variables",
    "needs_secret_env",
    "render_compose",
    "secret_env_command",
    "secrets_version",
    "traefik_address",
    "web_subnet",
]


RESOLVER = "composekit"


# The app's service (in both modes): Traefik's initial routes reach it by this name.
APP_SERVICE = "app"


GRACEFUL_TIMEOUT = 30


HEALTH_INTERVAL = "5s"


ACME_CA_DIR = "/etc/composekit/acme-ca"


DB_SERVICE = "db"


DB_SECRET = "db_password"


DB_PORT = 5432


POSTGRES_DATA = "/var/lib/postgresql/data"


# The service and the named volume that hold Traefik's routes (its file provider's directory): composekit writes
# them into the volume through `docker exec` in this container, Traefik mounts the volume read-only.
ROUTES = "routes"


ROUTES_DIR = "/routes"


TRAEFIK_DYNAMIC_DIR = "/etc/traefik/dynamic"


# The routes file in the routes volume: the one Traefik loads (composekit/engine/switch.py writes its generations).
ROUTES_FILE = "composekit.yml"


# The name, in RenderedStack.configs, of the routes the stack starts with (render/traefik.py initial_routes): the
# routes container copies them into the volume when it holds no routes file yet.
INITIAL_ROUTES = "routes.yml"


# PID 1 of the routes container: puts the initial routes (argv[2]) in place as argv[1] unless a routes file is there
# already (os.link never replaces a file: a generation `up` wrote is never overwritten, by a restart or a recreated
# container), then waits, and exits at once on SIGTERM (a bare pause would ignore it).
_ROUTES_INIT = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "path, text = sys.argv[1], sys.argv[2]\n"
    "if not os.path.exists(path):\n"
    "    tmp = os.path.join(os.path.dirname(path), '.' + os.path.basename(path) + '.initial.tmp')\n"
    "    with open(tmp, 'w') as f:\n"
    "        f.write(text)\n"
    "        f.flush()\n"
    "        os.fsync(f.fileno())\n"
    "    os.chmod(tmp, 0o644)\n"
    "    try:\n"
    "        os.link(tmp, path)\n"
    "        print('wrote the initial routes into', path, flush=True)\n"
    "    except FileExistsError:\n"
    "        pass\n"
    "    except OSError:\n"  # a filesystem without hard links
    "        if not os.path.exists(path):\n"
    "            os.rename(tmp, path)\n"
    "    if os.path.exists(tmp):\n"
    "        os.remove(tmp)\n"
    "signal.pause()\n"
)


# The one-shot service that copies the app's configs and secrets into the `files` volume, and where the app and
# the migration mount that volume (read-only). The database password reaches Compose in this variable only.
FILES_SERVICE = "files"


FILES_VOLUME = "files"


FILES_DIR = "/etc/composekit"


DB_PASSWORD_ENV = "COMPOSEKIT_DB_PASSWORD"


# The one deliberate variable of compose.yaml (set after escaping: compose_variables): a slow hash of the values
# runtime/secret_env.py puts into the app's environment, in a label of the app, so that a changed value changes the
# app's config hash and `up` switches to a new container (which reads the new files) instead of keeping the old one.
SECRETS_VERSION_ENV = "COMPOSEKIT_SECRETS_VERSION"


SECRETS_VERSION_LABEL = "composekit.secrets-version"


SECRETS_KDF_ITERATIONS = 200_000


# runtime/secret_env.py, where the app and the migration find it (the files volume; a Swarm config in mode: swarm).
SECRET_ENV = "secret_env.py"


SECRET_ENV_PATH = f"{FILES_DIR}/{SECRET_ENV}"


# Traefik's static configuration; its middlewares and TLS options travel in the routes file (render/traefik.py).
TRAEFIK_CONFIGS = {"traefik.yml": "/etc/traefik/traefik.yml"}


# Copies each given file into /files under its own name: written beside, mode 0444 (the app's user reads it),
# then renamed, so a running app never sees half a file. Names it was not given are removed (a dropped secret).
_COPY_FILES = (
    "import os, sys\n"
    "names = set()\n"
    "for src in sys.argv[1:]:\n"
    "    name = os.path.basename(src)\n"
    "    names.add(name)\n"
    "    with open(src, 'rb') as f:\n"
    "        data = f.read()\n"
    "    tmp = os.path.join('/files', '.' + name + '.tmp')\n"
    "    with open(tmp, 'wb') as f:\n"
    "        f.write(data)\n"
    "    os.chmod(tmp, 0o444)\n"
    "    os.replace(tmp, os.path.join('/files', name))\n"
    "    print('copied', name, len(data), 'bytes')\n"
    "for name in sorted(set(os.listdir('/files')) - names):\n"
    "    os.remove(os.path.join('/files', name))\n"
    "    print('removed', name)\n"
)


# Default subnets of `web`: a /24 per project name in a range Docker's default address pools never use
# (172.17-31.0.0/16, 192.168.0.0/16): 32768 slots, so two stacks on one host rarely meet.
DEFAULT_SUBNET_POOL = ipaddress.IPv4Network("10.128.0.0/9")


def app_image(config: Config) -> str:
    return f"{config.name}-app:latest"


def app_secret_name(variable: str) -> str:
    """The secret (and its file's name) that carries app/secrets/<variable>."""
    return f"env_{variable}"


def app_secret_env(variable: str) -> str:
    """The variable of the Compose process that composekit fills from app/secrets/<variable>'s file."""
    return f"COMPOSEKIT_SECRET_{variable}"


def needs_secret_env(config: Config) -> bool:
    """Whether a variable holds a secret (app/secrets, or the password in database/variables' set)."""
    database = config.database
    return bool(config.app.secrets) or (database is not None and database.variables != "composekit")


def database_url_template(config: Config) -> str:
    """DATABASE_URL with "{password}" where runtime/secret_env.py puts the password, percent-encoded."""
    db = config.database
    assert db is not None
    return f"{db.url_scheme}://{db.user}:{{password}}@{DB_SERVICE}:{DB_PORT}/{db.name}"


def env_secret_variables(config: Config) -> list[str]:
    """The Compose process's variables whose values runtime/secret_env.py puts into the app's environment."""
    names = [app_secret_env(name) for name in sorted(config.app.secrets)]
    database = config.database
    return names + ([DB_PASSWORD_ENV] if database is not None and database.variables != "composekit" else [])


def secrets_version(config: Config, values: Mapping[str, str]) -> str:
    """The value of SECRETS_VERSION_ENV: PBKDF2-HMAC-SHA256 of those values (``values`` by variable), salted with
    the project name, SECRETS_KDF_ITERATIONS rounds, 12 hex digits. Slow on purpose: `docker inspect` shows it."""
    data = b"".join(f"{name}\0{len(values[name])}\0{values[name]}".encode() for name in env_secret_variables(config))
    salt = f"composekit-secrets:{config.name}".encode()
    return hashlib.pbkdf2_hmac("sha256", data, salt, SECRETS_KDF_ITERATIONS).hex()[:12]


def compose_variables(doc: dict[str, Any], config: Config) -> dict[str, Any]:
    """Put the deliberate ${COMPOSEKIT_SECRETS_VERSION} in place, after every other string was escaped (literal)."""
    if needs_secret_env(config):
        doc["services"]["app"]["labels"][SECRETS_VERSION_LABEL] = f"${{{SECRETS_VERSION_ENV}:-}}"
    return doc


def secret_env_command(config: Config, argv: list[str], secrets_dir: str) -> list[str]:
    """``argv`` run by runtime/secret_env.py, which adds the secrets read from ``secrets_dir`` (the files volume,
    or /run/secrets in mode: swarm) to its process environment; ``argv`` as it is when no variable holds one."""
    if not needs_secret_env(config):
        return argv
    command = ["python3", "-I", "-B", SECRET_ENV_PATH]
    for name in sorted(config.app.secrets):
        command += ["--env", name, f"{secrets_dir}/{app_secret_name(name)}"]
    db = config.database
    if db is not None and db.variables == "postgres":
        command += ["--env", "POSTGRES_PASSWORD", f"{secrets_dir}/{DB_SECRET}"]
    elif db is not None and db.variables == "database_url":
        command += ["--url", "DATABASE_URL", database_url_template(config), f"{secrets_dir}/{DB_SECRET}"]
    return [*command, "--", *argv]


def _size(value: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


def _logging(config: Config) -> dict[str, Any]:
    """Rotation for every service: without it a chatty container fills the engine's disk."""
    log = config.logging
    return {"driver": log.driver, "options": {"max-size": _size(log.max_size), "max-file": str(log.max_file)}}


def _confinement(config: Config) -> dict[str, Any]:
    """The app and the migration run the same image: no capabilities, a read-only root (processes are
    bounded by deploy.resources.limits.pids: Compose refuses `pids_limit` next to other limits)."""
    app = config.app
    out: dict[str, Any] = {"cap_drop": ["ALL"]}
    if app.cap_add:
        out["cap_add"] = list(app.cap_add)
    if app.read_only:
        out["read_only"] = True
        out["tmpfs"] = ["/tmp"]
    return out


def _memory(value: int) -> str:
    mib = 1024 * 1024
    return f"{value // mib}m" if value % mib == 0 else str(value)


def web_subnet(config: Config) -> ipaddress.IPv4Network:
    """The subnet of the front network: network/subnet, or a /24 derived from the project name."""
    if config.network.subnet is not None:
        return ipaddress.IPv4Network(config.network.subnet)
    slots = 2 ** (24 - DEFAULT_SUBNET_POOL.prefixlen)
    index = int.from_bytes(hashlib.sha256(config.name.encode()).digest()[:4], "big") % slots
    return ipaddress.IPv4Network((int(DEFAULT_SUBNET_POOL.network_address) + index * 256, 24))


def traefik_address(config: Config) -> str:
    """Traefik's fixed address on `web` (.1 is the gateway); dynamic addresses come from the upper half."""
    return str(web_subnet(config).network_address + 2)


def _web_network(config: Config) -> dict[str, Any]:
    subnet = web_subnet(config)
    dynamic = list(subnet.subnets(prefixlen_diff=1))[1]
    ipam = {"subnet": str(subnet), "ip_range": str(dynamic), "gateway": str(subnet.network_address + 1)}
    return {"ipam": {"config": [ipam]}}


def _healthcheck_cmd(port: int, path: str) -> list[str]:
    url = f"http://127.0.0.1:{port}{path}"
    # repr(): a Python literal of the URL whatever quotes or backslashes the path holds.
    probe = f"import sys, urllib.request as u; sys.exit(0 if u.urlopen({url!r}, timeout=3).status == 200 else 1)"
    return ["CMD", "python3", "-c", probe]


# How long the app may take to turn healthy; Swarm's update monitor (render/swarm.py) waits at least this long.
APP_START_PERIOD = 30


def app_healthcheck(config: Config) -> dict[str, Any]:
    """The app's healthcheck (the same in compose and swarm mode): GET health_path answers 200."""
    return {
        "test": _healthcheck_cmd(config.app.port, config.app.health_path),
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


def app_limits(config: Config) -> dict[str, str | int]:
    """deploy.resources.limits of the app: cpus and memory when configured, processes always."""
    app = config.app
    limits: dict[str, str | int] = {}
    if app.cpus is not None:
        limits["cpus"] = f"{app.cpus:g}"
    if app.memory is not None:
        limits["memory"] = _memory(app.memory)
    limits["pids"] = app.pids_limit
    return limits


def acme_ca_name(index: int) -> str:
    """The name (in RenderedStack.configs and the compose file) of the index-th file of acme/ca_certificates."""
    return f"acme-ca-{index}.pem"


def _config_hash(contents: Mapping[str, str], names: list[str]) -> str:
    """A label value that changes with the content of the configs a service reads, so that Compose recreates the
    service when one changes (Compose itself compares the service definition only)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}\0{len(contents[name])}\0{contents[name]}".encode())
    return digest.hexdigest()[:16]


def _traefik_service(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    config = project.config
    configs = [{"source": name, "target": target} for name, target in TRAEFIK_CONFIGS.items()]
    ca_paths: list[str] = []
    for i in range(len(config.acme.ca_certificates)):
        target = f"{ACME_CA_DIR}/{i}.pem"
        configs.append({"source": acme_ca_name(i), "target": target})
        ca_paths.append(target)
    service: dict[str, Any] = {
        "image": config.images.traefik,
        "command": ["--configFile=/etc/traefik/traefik.yml"],
        "restart": "always",
        "ports": [f"{config.ports.http}:80", f"{config.ports.https}:443"],
        "configs": configs,
        "volumes": [f"{ROUTES}:{TRAEFIK_DYNAMIC_DIR}:ro", "acme:/acme"],
        "labels": {"composekit.config-hash": _config_hash(contents, [str(c["source"]) for c in configs])},
    }
    if ca_paths:
        service["environment"] = {"LEGO_CA_CERTIFICATES": ":".join(ca_paths)}
    if "://host.docker.internal" in config.acme.directory_url:
        service["extra_hosts"] = ["host.docker.internal:host-gateway"]
    service.update(
        {
            "healthcheck": traefik_healthcheck(),
            "security_opt": ["no-new-privileges:true"],
            "cap_drop": ["ALL"],
            "cap_add": ["NET_BIND_SERVICE"],  # binds :80 and :443
            "networks": {"web": {"ipv4_address": traefik_address(config)}},
        }
    )
    return service


def _routes_service(config: Config, contents: Mapping[str, str]) -> dict[str, Any]:
    """Holds the routes volume read-write: no network, no capabilities, a read-only root. It starts a fresh volume
    with the initial routes (the domain to the app's containers), so that the stack serves the domain even when
    brought up by plain `docker compose up`; `composekit up` then writes each generation here.

    Root inside so that it owns the volume it writes to (with no capability, root can write only what it owns).
    Nothing in the stack mounts the Docker socket: Traefik learns its routes from the files written here."""
    return {
        "image": config.images.python,
        "command": ["python3", "-I", "-c", _ROUTES_INIT, f"{ROUTES_DIR}/{ROUTES_FILE}", contents[INITIAL_ROUTES]],
        "restart": "always",
        "user": "0:0",
        "volumes": [f"{ROUTES}:{ROUTES_DIR}"],
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": 16,
    }


def _app_environment(config: Config) -> dict[str, str]:
    """composekit's own variables (config.APP_VARIABLES) first, then the app's.

    A worker setting is rendered only when the config sets its key: Compose gives `environment:` precedence
    over `env_file:`, so rendering a default would silently override an env file's WORKERS_PER_CORE=3.
    """
    app = config.app
    env = {
        "APP_PORT": str(app.port),
        "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        "FORWARDED_ALLOW_IPS": traefik_address(config),  # proxy headers are trusted from Traefik only
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
    env.update(_database_environment(config))
    for key in sorted(app.environment):
        env[key] = app.environment[key]
    return env


def _database_environment(config: Config) -> dict[str, str]:
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
        "DATABASE_PASSWORD_FILE": f"{FILES_DIR}/{DB_SECRET}",
    }


def _networks(config: Config) -> list[str]:
    return ["web", "db"] if config.database is not None else ["web"]


def _files_mount() -> dict[str, Any]:
    """The `files` volume, read-only; nocopy: never seeded from what the image has at that path."""
    return {
        "type": "volume",
        "source": FILES_VOLUME,
        "target": FILES_DIR,
        "read_only": True,
        "volume": {"nocopy": True},
    }


def _files_service(config: Config) -> dict[str, Any]:
    """Copies gunicorn.conf.py, runtime/secret_env.py, the database password and app/secrets into the `files`
    volume for the read-only app and migration. Root without capabilities: it owns the fresh volume, which is all
    it writes."""
    sources = [GUNICORN_CONF_PATH]
    service: dict[str, Any] = {
        "image": config.images.python,
        "command": ["python3", "-I", "-B", "-c", _COPY_FILES],
        "restart": "no",
        "user": "0:0",
        "configs": [{"source": "gunicorn.conf.py", "target": GUNICORN_CONF_PATH}],
    }
    if needs_secret_env(config):
        service["configs"].append({"source": SECRET_ENV, "target": SECRET_ENV_PATH})
        sources.append(SECRET_ENV_PATH)
    secrets = [DB_SECRET] if config.database is not None else []
    secrets += [app_secret_name(name) for name in sorted(config.app.secrets)]
    if secrets:
        service["secrets"] = secrets
        sources += [f"/run/secrets/{name}" for name in secrets]
    service["command"] = service["command"] + sources
    service.update(
        {
            "volumes": [f"{FILES_VOLUME}:/files"],
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": 16,
        }
    )
    return service


def _app_service(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    config = project.config
    app = config.app
    context = project.rel(project.app_dir)
    dockerfile = project.dockerfile if project.dockerfile is not None else project.out_dir / "Dockerfile"
    build = {
        "context": context,
        "dockerfile": Path(os.path.relpath(dockerfile, project.app_dir)).as_posix(),
        "args": {"PYTHON_IMAGE": config.images.python},
    }
    service: dict[str, Any] = {
        "build": build,
        "image": app_image(config),
        "command": secret_env_command(config, ["gunicorn", "--config", GUNICORN_CONF_PATH, app.module], FILES_DIR),
        "restart": "always",
    }
    if app.env_file:
        service["env_file"] = [project.rel(project.from_root(app.env_file))]
    service["environment"] = _app_environment(config)
    service["volumes"] = [_files_mount(), *_data_volumes(config)]
    read = ["gunicorn.conf.py", *([SECRET_ENV] if needs_secret_env(config) else [])]
    service["labels"] = {"composekit.config-hash": _config_hash(contents, read)}
    service["healthcheck"] = app_healthcheck(config)
    service["stop_grace_period"] = f"{GRACEFUL_TIMEOUT + 10}s"
    depends_on: dict[str, Any] = {FILES_SERVICE: {"condition": "service_completed_successfully"}}
    if config.database is not None:
        depends_on[DB_SERVICE] = {"condition": "service_healthy"}
    if config.migrate.command is not None:
        depends_on["migrate"] = {"condition": "service_completed_successfully"}
    service["depends_on"] = depends_on
    service["deploy"] = {"resources": {"limits": app_limits(config)}}
    service["security_opt"] = ["no-new-privileges:true"]
    service.update(_confinement(config))
    service["networks"] = _networks(config)
    return service


def _data_volumes(config: Config) -> list[str]:
    return [f"{name}:{target}" for name, target in sorted(config.app.volumes.items())]


def _migrate_service(project: Project) -> dict[str, Any]:
    config = project.config
    command = config.migrate.command
    assert command is not None
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    service: dict[str, Any] = {
        "image": app_image(config),
        "pull_policy": "never",
        "command": secret_env_command(config, argv, FILES_DIR),
        "restart": "no",
    }
    if config.app.env_file:
        service["env_file"] = [project.rel(project.from_root(config.app.env_file))]
    environment = _database_environment(config)
    environment.update({k: config.app.environment[k] for k in sorted(config.app.environment)})
    if environment:
        service["environment"] = environment
    service["volumes"] = [_files_mount(), *_data_volumes(config)]
    service["depends_on"] = {FILES_SERVICE: {"condition": "service_completed_successfully"}}
    if config.database is not None:
        service["depends_on"][DB_SERVICE] = {"condition": "service_healthy"}
    service["deploy"] = {"resources": {"limits": {"pids": config.app.pids_limit}}}
    service["security_opt"] = ["no-new-privileges:true"]
    service.update(_confinement(config))
    service["networks"] = _networks(config)
    return service


def _db_service(config: Config) -> dict[str, Any]:
    """PostgreSQL through the official image's interface; it reads the password from the secret file."""
    db = config.database
    assert db is not None
    probe = [
        "CMD",
        "pg_isready",
        "--host",
        "127.0.0.1",
        "--port",
        str(DB_PORT),
        "--username",
        db.user,
        "--dbname",
        db.name,
    ]
    return {
        "image": config.images.postgres,
        "restart": "always",
        "environment": {
            "POSTGRES_DB": db.name,
            "POSTGRES_USER": db.user,
            "POSTGRES_PASSWORD_FILE": f"/run/secrets/{DB_SECRET}",
        },
        "secrets": [DB_SECRET],
        "volumes": [f"{DATABASE_VOLUME}:{POSTGRES_DATA}"],
        # Over TCP: the official image's first-start server listens on a socket only, so this does
        # not report ready before the real server is up.
        "healthcheck": {
            "test": probe,
            "interval": HEALTH_INTERVAL,
            "timeout": "3s",
            "retries": 5,
            "start_period": "60s",
        },
        "stop_grace_period": "30s",
        # Capabilities kept: the entrypoint starts as root, takes ownership of the data directory and
        # switches to the postgres user (no setuid binary involved, so no-new-privileges holds).
        "security_opt": ["no-new-privileges:true"],
        "networks": ["db"],
    }


def render_compose(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    """The compose document; ``contents`` are the files it delivers (RenderedStack.configs), by name."""
    config = project.config
    # edge: shared: no Traefik of its own; the shared edge (render/edge.py) joins `web` at traefik_address.
    own = config.edge == "own"
    services: dict[str, Any] = {"traefik": _traefik_service(project, contents)} if own else {}
    services.update({ROUTES: _routes_service(config, contents), FILES_SERVICE: _files_service(config)})
    if config.database is not None:
        services[DB_SERVICE] = _db_service(config)
    if config.migrate.command is not None:
        services["migrate"] = _migrate_service(project)
    services[APP_SERVICE] = _app_service(project, contents)
    volumes: dict[str, Any] = {"acme": {}, ROUTES: {}, FILES_VOLUME: {}} if own else {ROUTES: {}, FILES_VOLUME: {}}
    for name in sorted(config.app.volumes):
        volumes[name] = {}
    networks: dict[str, Any] = {"web": _web_network(config)}
    doc: dict[str, Any] = {"name": config.name, "services": services, "networks": networks, "volumes": volumes}
    if config.database is not None:
        networks["db"] = {"internal": True}  # the database is reachable from the app and migrate only
        volumes[DATABASE_VOLUME] = {}
    names = [*TRAEFIK_CONFIGS, *(acme_ca_name(i) for i in range(len(config.acme.ca_certificates)))] if own else []
    names.append("gunicorn.conf.py")
    names += [SECRET_ENV] if needs_secret_env(config) else []
    doc["configs"] = {name: {"content": contents[name]} for name in names}
    # Read by Compose from its own environment: composekit sets them from database/password_file and app/secrets'
    # files for the Compose process only (engine/steps.py compose_secrets), so no value is in a rendered file.
    secrets = {DB_SECRET: {"environment": DB_PASSWORD_ENV}} if config.database is not None else {}
    secrets.update({app_secret_name(n): {"environment": app_secret_env(n)} for n in sorted(config.app.secrets)})
    if secrets:
        doc["secrets"] = secrets
    for service in services.values():
        service.setdefault("logging", _logging(config))
    return doc
