"""The files of a Swarm stack (mode: swarm): stack.yml for `docker stack deploy`, migrate.yml (the migration as a
job), and the files they turn into Swarm configs, under swarm/. Pure: same project -> same bytes; it reads the
config, the CA files it names and (deploy_variables only) the database password file, and writes nothing.

Rendered files (paths relative to the output directory, where stack.yml's relative paths are resolved from):
  stack.yml               services traefik, socket-proxy, app, and db when configured
  migrate.yml             only when migrate/command is set: the service `migrate` as a replicated job
  swarm/traefik.yml       Traefik's static configuration: the Swarm provider through the socket proxy
  swarm/traefik-dynamic.yml   its middlewares and TLS options (a file provider that never changes at runtime)
  swarm/socket_proxy.py   composekit/runtime/socket_proxy.py, verbatim
  swarm/acme-ca-N.pem     the files of acme/ca_certificates
  swarm/gunicorn.conf.py  only when app/workers is set explicitly (gunicorn; else one uvicorn process)
  swarm/uvicorn_drain.py  composekit/runtime/uvicorn_drain.py, verbatim, when uvicorn runs (no app/workers)
  swarm/secret_env.py     composekit/runtime/secret_env.py, verbatim, when app/secrets or database/variables puts a
                          secret in a variable: the app's and the migration's command run it first

Why it looks the way it does:
- One process per container: Swarm replicates containers, so the app runs plain uvicorn (`--workers 1`, visible in
  the command) unless app/workers is set (then gunicorn with it, and swarm_warnings says so).
- No virtual IPs (`endpoint_mode: dnsrr` everywhere): Traefik's Swarm provider routes to task addresses itself,
  and the services reach each other by DNS round robin (engines without IPVS have no virtual IPs at all).
- Traefik publishes 80/443 in `mode: host` on the manager it is pinned to (client addresses survive, no routing
  mesh); its ACME storage is the `acme` volume of that manager: single-node (a shared store is future work).
- Nothing internet-facing holds the Docker socket: Traefik asks the socket proxy (read-only calls only) over the
  internal `api` network.
- Every config and secret has a content-hashed name, so a change creates a new Swarm object and rolls out (a
  Swarm object is immutable). The database password's secret is versioned by ${COMPOSEKIT_DB_SECRET_VERSION}, a
  slow hash of the password computed at deploy time (deploy_variables), so no rendered file depends on it; each of
  app/secrets likewise by ${COMPOSEKIT_SECRET_<VARIABLE>_VERSION}. `docker stack deploy` reads the secrets' files
  (`file:`) on the deploying machine and sends their content through the API, so it works over ssh:// too.
- Every string is passed on literally ("$" doubled) except the deliberate ${COMPOSEKIT_...} variables.
"""

from __future__ import annotations

import hashlib
import shlex
from importlib import resources
from typing import Any

from ..config.model import DATABASE_VOLUME, Config
from ..config.project import Project
from ..errors import ConfigError
from .compose import (
    ACME_CA_DIR,
    APP_SERVICE,
    APP_START_PERIOD,
    DB_SECRET,
    DB_SERVICE,
    GRACEFUL_TIMEOUT,
    RESOLVER,
    SECRET_ENV,
    SECRET_ENV_PATH,
    _app_environment,
    _confinement,
    _data_volumes,
    _db_service,
    _logging,
    acme_ca_name,
    app_healthcheck,
    app_limits,
    app_secret_name,
    needs_secret_env,
    secret_env_command,
    traefik_healthcheck,
)
from .dockerfile import GUNICORN_CONF_PATH
from .text import CONFIG_HEADER, acme_ca_files, dump, header, literal
from .traefik import SWARM_DYNAMIC_FILE, SWARM_REFRESH_SECONDS, host_rule, traefik_dynamic, traefik_swarm_static

__all__ = [
    "APP_SERVICE",
    "DB_SECRET_VARIABLE",
    "MIGRATE_FILE",
    "MIGRATE_SERVICE",
    "RELEASE_VARIABLE",
    "REPLICAS_VARIABLE",
    "SOCKET_PROXY_SERVICE",
    "STACK_FILE",
    "SWARM_DIR",
    "TRAEFIK_REPLICAS_VARIABLE",
    "TRAEFIK_SERVICE",
    "app_command",
    "config_name",
    "db_secret_version",
    "deploy_variables",
    "render_swarm",
    "secret_version",
    "secret_version_variable",
    "swarm_image",
    "swarm_warnings",
]

STACK_FILE = "stack.yml"
MIGRATE_FILE = "migrate.yml"
SWARM_DIR = "swarm"
SECRETS_DIR = "/run/secrets"
MIGRATE_SERVICE = "migrate"
TRAEFIK_SERVICE = "traefik"
SOCKET_PROXY_SERVICE = "socket-proxy"
SOCKET_PROXY_PORT = 2375
SOCKET_PROXY_PATH = "/etc/composekit/socket_proxy.py"
DRAIN_RUNNER_PATH = "/etc/composekit/uvicorn_drain.py"
DOCKER_SOCKET = "/var/run/docker.sock"

# The only variables of the stack files; `docker stack deploy` substitutes them from its environment, which the
# deploying side fills from deploy_variables().
RELEASE_VARIABLE = "COMPOSEKIT_RELEASE"
REPLICAS_VARIABLE = "COMPOSEKIT_APP_REPLICAS"
# 0 at a first deploy only: Traefik starts once the socket proxy it reads the services through runs (Swarm has no
# depends_on; started together, Traefik logs errors until the proxy's name resolves).
TRAEFIK_REPLICAS_VARIABLE = "COMPOSEKIT_TRAEFIK_REPLICAS"
DB_SECRET_VARIABLE = "COMPOSEKIT_DB_SECRET_VERSION"

# The compose file format `docker stack deploy` reads (the Docker CLI's own loader, not the Compose plugin).
STACK_VERSION = "3.9"
# deploy_variables' hash of the database password: PBKDF2-HMAC-SHA256, salted with the stack name.
DB_SECRET_KDF_ITERATIONS = 200_000
DB_SECRET_VERSION_LENGTH = 12
# The longest name of a Swarm secret or config (swarmkit refuses longer ones at `docker stack deploy`).
SWARM_NAME_MAX = 64
# Seconds Traefik waits between two active health checks of a task, and for one answer.
TRAEFIK_HEALTH_INTERVAL = "2s"
TRAEFIK_HEALTH_TIMEOUT = "2s"
# Keep-alive of the app's connections, above Traefik's idle timeout towards it (60s, render/traefik.py).
KEEP_ALIVE = 75
# How long a task Swarm stops keeps serving before its graceful stop (runtime/uvicorn_drain.py): Traefik's Swarm
# provider drops a task whose desired state is no longer "running" at its next poll (SWARM_REFRESH_SECONDS), plus
# a margin for the poll itself and the engine's answer.
DRAIN_SECONDS = SWARM_REFRESH_SECONDS + 2

_MANAGER = "node.role == manager"


def swarm_image(config: Config, release: str) -> str:
    """The release image as the cluster's nodes know it: <name>-app:<release>, under registry/ when one is set."""
    repository = f"{config.name}-app" if config.registry is None else f"{config.registry}/{config.name}-app"
    return f"{repository}:{release}"


def config_name(config: Config, key: str, content: str) -> str:
    """A Swarm config's name: the stack, the file, and 8 hex digits of the content's SHA-256 (a change of content
    is a new object, which Swarm rolls out; an unchanged one keeps its name, so nothing restarts)."""
    return f"{config.name}_{key}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"


def _config_key(filename: str) -> str:
    """traefik.yml -> traefik-yml: the key of a file in stack.yml's `configs`."""
    return filename.replace(".", "-").replace("_", "-")


def _explicit_workers(config: Config) -> bool:
    return "workers" in config.app.model_fields_set


def app_command(config: Config) -> list[str]:
    """One process: uvicorn with --workers 1 (WEB_CONCURRENCY from an env file cannot change it), run by
    runtime/uvicorn_drain.py in the same process, which keeps a stopping task serving until Traefik has dropped it.
    The network `web` is the stack's own overlay where only Traefik reaches the app, hence --forwarded-allow-ips=*.
    With app/workers set: gunicorn with gunicorn.conf.py, which sizes the workers as in compose mode and drains
    the same way (DRAIN_SECONDS in the environment)."""
    app = config.app
    if _explicit_workers(config):
        return ["gunicorn", "--config", GUNICORN_CONF_PATH, app.module]
    return [
        "python3",
        DRAIN_RUNNER_PATH,
        "--drain-seconds",
        str(DRAIN_SECONDS),
        app.module,
        "--host",
        "0.0.0.0",
        "--port",
        str(app.port),
        "--workers",
        "1",
        "--proxy-headers",
        "--forwarded-allow-ips=*",
        "--timeout-keep-alive",
        str(KEEP_ALIVE),
        "--timeout-graceful-shutdown",
        str(GRACEFUL_TIMEOUT),
    ]


def swarm_warnings(config: Config) -> list[str]:
    """What the CLI prints on stderr before rendering or deploying a swarm stack; [] in compose mode."""
    if config.mode != "swarm":
        return []
    warnings: list[str] = []
    app = config.app
    if _explicit_workers(config):
        what = (
            "as many worker processes as its CPUs and memory allow"
            if app.workers == "auto"
            else f"{app.workers} worker processes"
        )
        warnings.append(
            f"app/workers: {app.workers} runs gunicorn with {what} in each of the app's containers; in mode: swarm, "
            "Swarm replicates containers (app/replicas), so one process per container is the usual choice: remove "
            "app/workers to run one uvicorn process per container"
        )
    if app.volumes:
        names = ", ".join(sorted(app.volumes))
        warnings.append(
            f"app/volumes: {names}: in mode: swarm a named volume is local to the node a task runs on; replicas on "
            "different nodes do not share it (pin the app to one node with app/placement, or keep the data in the "
            "database)"
        )
    return warnings


def _swarm_files(project: Project) -> dict[str, str]:
    """The files under swarm/ by name, as Swarm configs carry them."""
    config = project.config
    runtime = resources.files("composekit.runtime")
    network = f"{config.name}_web"  # the stack's `web` overlay, as `docker stack deploy <name>` names it
    static = traefik_swarm_static(config, f"tcp://{SOCKET_PROXY_SERVICE}:{SOCKET_PROXY_PORT}", network)
    files = {
        "traefik.yml": CONFIG_HEADER + dump(static),
        "traefik-dynamic.yml": CONFIG_HEADER + dump(traefik_dynamic()),
        "socket_proxy.py": runtime.joinpath("socket_proxy.py").read_text(encoding="utf-8"),
    }
    files.update(acme_ca_files(project))
    if _explicit_workers(config):
        files["gunicorn.conf.py"] = runtime.joinpath("gunicorn_conf.py").read_text(encoding="utf-8")
    else:
        files["uvicorn_drain.py"] = runtime.joinpath("uvicorn_drain.py").read_text(encoding="utf-8")
    if needs_secret_env(config):
        files[SECRET_ENV] = runtime.joinpath(SECRET_ENV).read_text(encoding="utf-8")
    return files


def _configs_of(files: dict[str, str], targets: dict[str, str]) -> list[dict[str, Any]]:
    return [{"source": _config_key(name), "target": target} for name, target in targets.items() if name in files]


def _deploy(replicas: int | str, placement: list[str], **more: Any) -> dict[str, Any]:
    deploy: dict[str, Any] = {"mode": "replicated", "replicas": replicas, "endpoint_mode": "dnsrr"}
    if placement:
        deploy["placement"] = {"constraints": placement}
    deploy.update(more)
    return deploy


def _restart_any() -> dict[str, Any]:
    return {"condition": "any", "delay": "5s", "window": "30s"}


def _traefik_service(project: Project, files: dict[str, str]) -> dict[str, Any]:
    config = project.config
    targets = {"traefik.yml": "/etc/traefik/traefik.yml", "traefik-dynamic.yml": SWARM_DYNAMIC_FILE}
    cas = [acme_ca_name(i) for i in range(len(config.acme.ca_certificates))]
    targets.update({name: f"{ACME_CA_DIR}/{i}.pem" for i, name in enumerate(cas)})
    service: dict[str, Any] = {
        "image": config.images.traefik,
        "command": ["--configFile=/etc/traefik/traefik.yml"],
        # Published on the manager's own interfaces (no routing mesh): client addresses reach Traefik unchanged.
        "ports": [
            {"target": 80, "published": config.ports.http, "protocol": "tcp", "mode": "host"},
            {"target": 443, "published": config.ports.https, "protocol": "tcp", "mode": "host"},
        ],
        "configs": _configs_of(files, targets),
        "volumes": ["acme:/acme"],  # local to the manager Traefik is pinned to: ACME storage is single-node
    }
    if cas:
        service["environment"] = {"LEGO_CA_CERTIFICATES": ":".join(f"{ACME_CA_DIR}/{i}.pem" for i in range(len(cas)))}
    if "://host.docker.internal" in config.acme.directory_url:
        service["extra_hosts"] = ["host.docker.internal:host-gateway"]
    service.update(
        {
            "healthcheck": traefik_healthcheck(),
            "cap_drop": ["ALL"],
            "cap_add": ["NET_BIND_SERVICE"],  # binds :80 and :443
            "networks": ["web", "api"],
            "logging": _logging(config),
            # stop-first: a second Traefik could not bind the same host ports on the one manager.
            "deploy": _deploy(
                1,
                [_MANAGER],
                update_config={"parallelism": 1, "order": "stop-first", "failure_action": "rollback"},
                restart_policy=_restart_any(),
            ),
        }
    )
    return service


def _socket_proxy_service(config: Config) -> dict[str, Any]:
    """Root without capabilities: it owns nothing but may connect to the root-owned socket. Read-only root, no
    network but `api`, a handful of processes."""
    probe = (
        "import sys, urllib.request as u; "
        f"sys.exit(0 if u.urlopen('http://127.0.0.1:{SOCKET_PROXY_PORT}/_ping', timeout=3).status == 200 else 1)"
    )
    return {
        "image": config.images.python,
        "command": ["python3", "-I", "-B", SOCKET_PROXY_PATH],
        "user": "0:0",
        "environment": {"SOCKET_PROXY_PORT": str(SOCKET_PROXY_PORT), "DOCKER_SOCKET": DOCKER_SOCKET},
        "configs": [{"source": _config_key("socket_proxy.py"), "target": SOCKET_PROXY_PATH}],
        "volumes": [{"type": "bind", "source": DOCKER_SOCKET, "target": DOCKER_SOCKET, "read_only": True}],
        "read_only": True,
        "cap_drop": ["ALL"],
        "healthcheck": {"test": ["CMD", "python3", "-c", probe], "interval": "5s", "timeout": "4s", "retries": 3},
        "networks": ["api"],
        "logging": _logging(config),
        "deploy": _deploy(1, [_MANAGER], restart_policy=_restart_any(), resources={"limits": {"pids": 64}}),
    }


def _traefik_labels(config: Config) -> dict[str, str]:
    """The app's route (Swarm provider labels, under deploy.labels): HTTPS on the domain with the ACME resolver
    (HTTP redirects to HTTPS at Traefik's `web` entrypoint), an active health check so a task that stops
    answering leaves the pool within seconds, and retries of requests that found a task already gone."""
    name = config.name
    router, service, retry = f"traefik.http.routers.{name}", f"traefik.http.services.{name}", f"{name}-retry"
    return {
        "traefik.enable": "true",
        "traefik.swarm.network": f"{name}_web",
        f"{router}.rule": " || ".join(host_rule(d) for d in config.domains),
        f"{router}.entrypoints": "websecure",
        f"{router}.tls.certresolver": RESOLVER,
        f"{router}.middlewares": f"security-headers@file,{retry}@swarm",
        f"{router}.service": name,
        f"{service}.loadbalancer.server.port": str(config.app.port),
        f"{service}.loadbalancer.healthcheck.path": config.app.health_path,
        f"{service}.loadbalancer.healthcheck.interval": TRAEFIK_HEALTH_INTERVAL,
        f"{service}.loadbalancer.healthcheck.timeout": TRAEFIK_HEALTH_TIMEOUT,
        f"traefik.http.middlewares.{retry}.retry.attempts": "3",
        f"traefik.http.middlewares.{retry}.retry.initialinterval": "100ms",
    }


def _environment(config: Config) -> dict[str, str]:
    """The compose render's variables, with what differs in Swarm: proxy headers trusted on the stack's own
    network (Traefik's address there is not fixed) and the password where Swarm mounts secrets."""
    env = _app_environment(config)
    env["FORWARDED_ALLOW_IPS"] = "*"
    if "DATABASE_PASSWORD_FILE" in env:
        env["DATABASE_PASSWORD_FILE"] = f"{SECRETS_DIR}/{DB_SECRET}"
    return env


def _secret_names(config: Config) -> list[str]:
    """The secrets the app and the migration read: the database password, then app/secrets."""
    names = [DB_SECRET] if config.database is not None else []
    return names + [app_secret_name(name) for name in sorted(config.app.secrets)]


def _volumes(config: Config) -> list[Any]:
    """Swarm ignores `tmpfs:`; a tmpfs mount gives the read-only app its writable /tmp."""
    tmp: list[Any] = [{"type": "tmpfs", "target": "/tmp"}] if config.app.read_only else []
    return tmp + _data_volumes(config)


def _confined(config: Config) -> dict[str, Any]:
    out = _confinement(config)
    out.pop("tmpfs", None)
    return out


def _networks(config: Config) -> list[str]:
    return ["web", DB_SERVICE] if config.database is not None else ["web"]


def _app_service(project: Project, files: dict[str, str]) -> dict[str, Any]:
    config = project.config
    app = config.app
    command = secret_env_command(config, app_command(config), SECRETS_DIR)
    service: dict[str, Any] = {"image": "", "command": command}  # image: set after escaping
    if app.env_file:
        service["env_file"] = [project.rel(project.from_root(app.env_file))]
    service["environment"] = _environment(config)
    if _explicit_workers(config):  # gunicorn.conf.py's drain; uvicorn_drain.py takes it as an argument
        service["environment"]["DRAIN_SECONDS"] = str(DRAIN_SECONDS)
    configs = _configs_of(
        files,
        {"gunicorn.conf.py": GUNICORN_CONF_PATH, "uvicorn_drain.py": DRAIN_RUNNER_PATH, SECRET_ENV: SECRET_ENV_PATH},
    )
    if configs:
        service["configs"] = configs
    if _secret_names(config):
        service["secrets"] = _secret_names(config)
    volumes = _volumes(config)
    if volumes:
        service["volumes"] = volumes
    service["healthcheck"] = app_healthcheck(config)
    service["stop_grace_period"] = f"{GRACEFUL_TIMEOUT + DRAIN_SECONDS + 10}s"
    service.update(_confined(config))
    service["networks"] = _networks(config)
    service["logging"] = _logging(config)
    service["deploy"] = _deploy(
        0,  # replicas: set after escaping
        list(app.placement),
        labels=_traefik_labels(config),
        # A new task starts and turns healthy before an old one stops; Swarm watches each new task for at least
        # its healthcheck's start window and rolls the whole update back when one fails.
        update_config={
            "parallelism": 1,
            "delay": "0s",
            "order": "start-first",
            "failure_action": "rollback",
            "monitor": f"{APP_START_PERIOD}s",
            "max_failure_ratio": 0,
        },
        rollback_config={"parallelism": 1, "order": "start-first", "failure_action": "pause"},
        restart_policy=_restart_any(),
        resources={"limits": app_limits(config)},
    )
    return service


def _migrate_service(project: Project, files: dict[str, str]) -> dict[str, Any]:
    """The migration: a job of one task on the release image, with the app's environment, secrets and networks;
    never restarted (a failed migration stays failed: the deploy stops before the app is updated)."""
    config = project.config
    command = config.migrate.command
    assert command is not None
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    service: dict[str, Any] = {"image": "", "command": secret_env_command(config, argv, SECRETS_DIR)}
    if config.app.env_file:
        service["env_file"] = [project.rel(project.from_root(config.app.env_file))]
    service["environment"] = _environment(config)
    configs = _configs_of(files, {SECRET_ENV: SECRET_ENV_PATH})
    if configs:
        service["configs"] = configs
    if _secret_names(config):
        service["secrets"] = _secret_names(config)
    volumes = _volumes(config)
    if volumes:
        service["volumes"] = volumes
    service.update(_confined(config))
    service["networks"] = _networks(config)
    service["logging"] = _logging(config)
    deploy: dict[str, Any] = {"mode": "replicated-job", "restart_policy": {"condition": "none"}}
    if config.app.placement:
        deploy["placement"] = {"constraints": list(config.app.placement)}
    deploy["resources"] = {"limits": app_limits(config)}
    service["deploy"] = deploy
    return service


def _db_swarm_service(config: Config) -> dict[str, Any]:
    """The compose render's PostgreSQL on the manager (its volume is local there), one task, stop-first."""
    service = _db_service(config)
    for unsupported in ("restart", "security_opt"):  # `docker stack deploy` ignores them
        service.pop(unsupported, None)
    service["logging"] = _logging(config)
    service["deploy"] = _deploy(
        1,
        [_MANAGER],
        update_config={"parallelism": 1, "order": "stop-first", "failure_action": "rollback"},
        restart_policy=_restart_any(),
    )
    return service


def _networks_doc(config: Config) -> dict[str, Any]:
    networks: dict[str, Any] = {
        "web": {"driver": "overlay"},  # Traefik and the app (not attachable: nothing outside the stack joins it)
        "api": {"driver": "overlay", "internal": True},  # Traefik and the socket proxy only
    }
    if config.database is not None:
        networks[DB_SERVICE] = {"driver": "overlay", "internal": True}  # the app and the migration only
    return networks


def _secrets_doc(project: Project) -> dict[str, Any]:
    """The database password and app/secrets: read by `docker stack deploy` from their files; each name carries a
    version from deploy_variables, so a new value is a new secret (Swarm secrets are immutable)."""
    config = project.config
    problems = []
    for secret, (key, _) in _secret_files(project).items():
        length = len(f"{config.name}_{secret}-") + DB_SECRET_VERSION_LENGTH
        if length > SWARM_NAME_MAX:
            source = " + ".join(p.name for p in project.config_files)
            problems.append(
                f"{source}: {key}: in mode: swarm its Docker secret is named {config.name}_{secret}-<version>, "
                f"{length} characters, and Swarm allows {SWARM_NAME_MAX}: shorten name"
                + (" or the variable's name" if key.startswith("app/") else "")
            )
    if problems:
        raise ConfigError(problems)
    return {
        name: {"name": "", "file": project.rel(project.from_root(path))}
        for name, (_, path) in _secret_files(project).items()
    }


def _secret_files(project: Project) -> dict[str, tuple[str, str]]:
    """Each secret of the stack -> (its key in the config, the path of its file there)."""
    config = project.config
    files = {DB_SECRET: ("database/password_file", config.database.password_file)} if config.database else {}
    files.update({app_secret_name(n): (f"app/secrets/{n}", v) for n, v in sorted(config.app.secrets.items())})
    return files


def secret_version_variable(secret: str) -> str:
    """The variable of stack.yml that versions ``secret``'s name (deploy_variables sets it)."""
    if secret == DB_SECRET:
        return DB_SECRET_VARIABLE
    return f"COMPOSEKIT_SECRET_{secret.removeprefix('env_')}_VERSION"


def _variables(doc: dict[str, Any], config: Config) -> None:
    """Put the deliberate ${COMPOSEKIT_...} variables in place, after every other string was escaped."""
    image = swarm_image(config, f"${{{RELEASE_VARIABLE}:?set by composekit: the release to deploy}}")
    for name, service in doc["services"].items():
        if name in (APP_SERVICE, MIGRATE_SERVICE):
            service["image"] = image
        if name == APP_SERVICE:
            service["deploy"]["replicas"] = f"${{{REPLICAS_VARIABLE}:-{config.app.replicas}}}"
        if name == TRAEFIK_SERVICE:
            service["deploy"]["replicas"] = f"${{{TRAEFIK_REPLICAS_VARIABLE}:-1}}"
    for secret, spec in doc.get("secrets", {}).items():
        what = "the password" if secret == DB_SECRET else "the value"
        version = f"${{{secret_version_variable(secret)}:?set by composekit: a hash of {what}}}"
        spec["name"] = f"{config.name}_{secret}-{version}"


def _document(project: Project, services: dict[str, Any], files: dict[str, str], uses: set[str]) -> str:
    """A stack file: ``services``, and the networks, volumes, configs and secrets that ``uses`` names."""
    config = project.config
    doc: dict[str, Any] = {"version": STACK_VERSION, "services": services}
    doc["networks"] = {k: v for k, v in _networks_doc(config).items() if k in uses}
    volumes: dict[str, Any] = {n: {} for n in ["acme", *sorted(config.app.volumes), DATABASE_VOLUME] if n in uses}
    if volumes:
        doc["volumes"] = volumes
    configs = {
        _config_key(name): {"name": config_name(config, _config_key(name), content), "file": f"{SWARM_DIR}/{name}"}
        for name, content in files.items()
        if _config_key(name) in uses
    }
    if configs:
        doc["configs"] = configs
    secrets = {k: v for k, v in _secrets_doc(project).items() if k in uses}
    if secrets:
        doc["secrets"] = secrets
    doc = literal(doc)
    _variables(doc, config)
    return header(project) + dump(doc)


def _uses(services: dict[str, Any]) -> set[str]:
    """Every network, named volume, config and secret the services refer to."""
    used: set[str] = set()
    for service in services.values():
        used.update(service.get("networks", []))
        used.update(str(c["source"]) for c in service.get("configs", []))
        used.update(str(s) for s in service.get("secrets", []))
        used.update(v.split(":")[0] for v in service.get("volumes", []) if isinstance(v, str))
    return used


def render_swarm(project: Project) -> dict[str, str]:
    """Every file of the swarm stack by path relative to the output directory (stack.yml, migrate.yml when a
    migration is configured, swarm/...). The app image's Dockerfile, when composekit generates one, is rendered by
    render/stack.py as in compose mode. Same project -> byte-identical output."""
    config = project.config
    files = _swarm_files(project)
    services: dict[str, Any] = {
        TRAEFIK_SERVICE: _traefik_service(project, files),
        SOCKET_PROXY_SERVICE: _socket_proxy_service(config),
        APP_SERVICE: _app_service(project, files),
    }
    if config.database is not None:
        services[DB_SERVICE] = _db_swarm_service(config)
    out = {STACK_FILE: _document(project, services, files, _uses(services))}
    if config.migrate.command is not None:
        migrate = {MIGRATE_SERVICE: _migrate_service(project, files)}
        out[MIGRATE_FILE] = _document(project, migrate, files, _uses(migrate))
    out.update({f"{SWARM_DIR}/{name}": content for name, content in files.items()})
    return out


def db_secret_version(project: Project) -> str:
    """A version of the database password for its secret's name: PBKDF2-HMAC-SHA256 of the password file's bytes,
    salted with the stack name, DB_SECRET_KDF_ITERATIONS rounds, the first DB_SECRET_VERSION_LENGTH hex digits.
    It changes when the password changes; slow on purpose, as the name is visible to whoever lists secrets."""
    assert project.config.database is not None
    return secret_version(project, DB_SECRET)


def secret_version(project: Project, secret: str) -> str:
    """db_secret_version's hash, of any secret of the stack (the database password, one of app/secrets)."""
    key, value = _secret_files(project)[secret]
    path = project.from_root(value)
    try:
        content = path.read_bytes()
    except OSError as exc:
        source = " + ".join(p.name for p in project.config_files)
        raise ConfigError([f'{source}: {key}: cannot read "{value}" ({path}): {exc.strerror}']) from None
    salt = f"composekit-swarm-secret:{project.config.name}".encode()
    digest = hashlib.pbkdf2_hmac("sha256", content, salt, DB_SECRET_KDF_ITERATIONS)
    return digest.hex()[:DB_SECRET_VERSION_LENGTH]


def deploy_variables(
    project: Project, release: str, replicas: int | None = None, traefik: bool = True
) -> dict[str, str]:
    """The environment of `docker stack deploy` for stack.yml and migrate.yml: the release, the app's replicas
    (``replicas``, else app/replicas), Traefik's (0 without ``traefik``: a first deploy's first step) and the
    version of each secret (the database password's, app/secrets')."""
    variables = {
        RELEASE_VARIABLE: release,
        REPLICAS_VARIABLE: str(replicas if replicas is not None else project.config.app.replicas),
        TRAEFIK_REPLICAS_VARIABLE: "1" if traefik else "0",
    }
    for secret in _secret_files(project):
        variables[secret_version_variable(secret)] = secret_version(project, secret)
    return variables
