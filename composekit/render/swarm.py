"""The files of a Swarm stack (mode: swarm): stack.yml for `docker stack deploy`, migrate.yml (the migration as a
job), and the files they turn into Swarm configs, under swarm/. Pure: same project -> same bytes; it reads the
config and the CA files it names, and writes nothing. The app, the migration and the database are described once in
render/services.py (ServiceSpec); here they are written in a stack file's syntax, beside mode: swarm's own services
(Traefik, the socket proxy). render/swarm_app.py: the app's process; render/swarm_variables.py: the deploy-time
variables (deploy_variables, which reads the secrets' files).

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
from importlib import resources
from typing import Any, assert_never

from ..config.model import DATABASE_VOLUME, Config
from ..config.project import Project
from .names import ACME_CA_DIR, APP_SERVICE, APP_START_PERIOD, DB_SERVICE, MIGRATE_SERVICE, RESOLVER, acme_ca_name
from .secrets import DB_SECRET, SECRET_ENV, needs_secret_env
from .services import ServiceSpec, app_services, http_probe, logging_options, traefik_healthcheck
from .swarm_app import FILE_TARGETS, explicit_workers, swarm_mode
from .swarm_variables import (
    RELEASE_VARIABLE,
    REPLICAS_VARIABLE,
    TRAEFIK_REPLICAS_VARIABLE,
    secret_version_variable,
    secrets_section,
    swarm_image,
)
from .text import CONFIG_HEADER, acme_ca_files, dump, header, literal
from .traefik import SWARM_DYNAMIC_FILE, host_rule, traefik_dynamic, traefik_swarm_static

__all__ = [
    "MIGRATE_FILE",
    "SOCKET_PROXY_SERVICE",
    "STACK_FILE",
    "SWARM_DIR",
    "TRAEFIK_SERVICE",
    "config_name",
    "render_swarm",
]

STACK_FILE = "stack.yml"
MIGRATE_FILE = "migrate.yml"
SWARM_DIR = "swarm"
TRAEFIK_SERVICE = "traefik"
SOCKET_PROXY_SERVICE = "socket-proxy"
SOCKET_PROXY_PORT = 2375
SOCKET_PROXY_PATH = "/etc/composekit/socket_proxy.py"
DOCKER_SOCKET = "/var/run/docker.sock"

# The compose file format `docker stack deploy` reads (the Docker CLI's own loader, not the Compose plugin).
STACK_VERSION = "3.9"
# Seconds Traefik waits between two active health checks of a task, and for one answer.
TRAEFIK_HEALTH_INTERVAL = "2s"
TRAEFIK_HEALTH_TIMEOUT = "2s"
_MANAGER = "node.role == manager"


def config_name(config: Config, key: str, content: str) -> str:
    """A Swarm config's name: the stack, the file, and 8 hex digits of the content's SHA-256 (a change of content
    is a new object, which Swarm rolls out; an unchanged one keeps its name, so nothing restarts)."""
    return f"{config.name}_{key}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"


def _config_key(filename: str) -> str:
    """traefik.yml -> traefik-yml: the key of a file in stack.yml's `configs`."""
    return filename.replace(".", "-").replace("_", "-")


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
    if explicit_workers(config):
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
            "logging": logging_options(config),
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
    return {
        "image": config.images.python,
        "command": ["python3", "-I", "-B", SOCKET_PROXY_PATH],
        "user": "0:0",
        "environment": {"SOCKET_PROXY_PORT": str(SOCKET_PROXY_PORT), "DOCKER_SOCKET": DOCKER_SOCKET},
        "configs": [{"source": _config_key("socket_proxy.py"), "target": SOCKET_PROXY_PATH}],
        "volumes": [{"type": "bind", "source": DOCKER_SOCKET, "target": DOCKER_SOCKET, "read_only": True}],
        "read_only": True,
        "cap_drop": ["ALL"],
        "healthcheck": {
            "test": http_probe(SOCKET_PROXY_PORT, "/_ping"),
            "interval": "5s",
            "timeout": "4s",
            "retries": 3,
        },
        "networks": ["api"],
        "logging": logging_options(config),
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


def _service(config: Config, spec: ServiceSpec, files: dict[str, str]) -> dict[str, Any]:
    """``spec`` in a stack file. The app's image is the release's (set after escaping); secrets are Swarm secrets
    under /run/secrets, composekit's files Swarm configs; `docker stack deploy` ignores `restart` and `security_opt`,
    and `tmpfs:` (a tmpfs mount gives a read-only container its writable /tmp)."""
    service: dict[str, Any] = {"image": "" if spec.release else spec.image}
    if spec.command is not None:
        service["command"] = spec.command
    if spec.env_file:
        service["env_file"] = spec.env_file
    if spec.environment:
        service["environment"] = spec.environment
    configs = _configs_of(files, {name: FILE_TARGETS[name] for name in spec.files})
    if configs:
        service["configs"] = configs
    if spec.secrets:
        service["secrets"] = spec.secrets
    volumes: list[Any] = [{"type": "tmpfs", "target": "/tmp"}] if spec.read_only else []
    volumes += [f"{name}:{target}" for name, target in spec.volumes]
    if volumes:
        service["volumes"] = volumes
    if spec.healthcheck is not None:
        service["healthcheck"] = spec.healthcheck
    if spec.stop_grace_period is not None:
        service["stop_grace_period"] = f"{spec.stop_grace_period}s"
    if spec.cap_drop:
        service["cap_drop"] = spec.cap_drop
    if spec.cap_add:
        service["cap_add"] = spec.cap_add
    if spec.read_only:
        service["read_only"] = True
    if spec.user is not None:
        service["user"] = spec.user
    service["networks"] = spec.networks
    service["logging"] = logging_options(config)
    service["deploy"] = _service_deploy(config, spec)
    return service


def _service_deploy(config: Config, spec: ServiceSpec) -> dict[str, Any]:
    resources = {"resources": {"limits": spec.limits}} if spec.limits else {}
    match spec.role:
        case "web":
            return _deploy(
                0,  # replicas: set after escaping
                spec.placement,
                labels=_traefik_labels(config),
                # A new task starts and turns healthy before an old one stops; Swarm watches each new task for at
                # least its healthcheck's start window and rolls the whole update back when one fails.
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
                **resources,
            )
        case "job":  # one task, never restarted: a failed migration stays failed
            deploy: dict[str, Any] = {"mode": "replicated-job", "restart_policy": {"condition": "none"}}
            if spec.placement:
                deploy["placement"] = {"constraints": spec.placement}
            return deploy | resources
        case "database":  # on the manager, where its volume is; one task, stop-first
            return _deploy(
                1,
                [_MANAGER],
                update_config={"parallelism": 1, "order": "stop-first", "failure_action": "rollback"},
                restart_policy=_restart_any(),
                **resources,
            )
        case "worker":  # processes/ are refused in mode: swarm when the config loads (config/companions.py)
            raise AssertionError(f"{spec.name}: processes are not rendered in mode: swarm")
        case _:
            assert_never(spec.role)


def _networks_doc(config: Config) -> dict[str, Any]:
    networks: dict[str, Any] = {
        "web": {"driver": "overlay"},  # Traefik and the app (not attachable: nothing outside the stack joins it)
        "api": {"driver": "overlay", "internal": True},  # Traefik and the socket proxy only
    }
    if config.database is not None:
        networks[DB_SERVICE] = {"driver": "overlay", "internal": True}  # the app and the migration only
    return networks


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
    secrets = {k: v for k, v in secrets_section(project).items() if k in uses}
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
    specs = app_services(project, swarm_mode(config))
    services: dict[str, Any] = {
        TRAEFIK_SERVICE: _traefik_service(project, files),
        SOCKET_PROXY_SERVICE: _socket_proxy_service(config),
        APP_SERVICE: _service(config, specs[APP_SERVICE], files),
    }
    if DB_SERVICE in specs:
        services[DB_SERVICE] = _service(config, specs[DB_SERVICE], files)
    out = {STACK_FILE: _document(project, services, files, _uses(services))}
    if MIGRATE_SERVICE in specs:
        migrate = {MIGRATE_SERVICE: _service(config, specs[MIGRATE_SERVICE], files)}
        out[MIGRATE_FILE] = _document(project, migrate, files, _uses(migrate))
    out.update({f"{SWARM_DIR}/{name}": content for name, content in files.items()})
    return out
