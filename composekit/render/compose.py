"""The compose file of a stack: services traefik, routes, files, app and (when configured) migrate and db, their
networks, volumes, configs and secrets. Pure: same project -> same document. The app, the migration and the
database are described once in render/services.py (ServiceSpec); here they are written in Compose's syntax, beside
compose mode's own services (Traefik, routes, files).

Nothing is bind-mounted from the deploying machine, so the document works unchanged against a remote engine:
every file a container needs travels inside the document (top-level `configs` with `content:`) and the database
password as a secret read from an environment variable of the Compose process (DB_PASSWORD_ENV, render/secrets.py).
Compose refuses both in a read-only container, so the read-only app and migration get theirs from the `files`
volume, which the one-shot `files` service fills from its own configs and secrets. Traefik's routes live in the
`routes` volume: the network-less `routes` container starts a fresh volume with the rendered initial routes (the
domain to the app), and `composekit up` writes each generation through `docker exec` in it. Only named volumes are
mounted: nothing in the stack mounts the Docker socket.

app/secrets travel as the database password does (a secret per variable, read from app_secret_env, copied into the
`files` volume). A variable that holds a secret (app/secrets, DATABASE_URL, POSTGRES_PASSWORD) is set by
runtime/secret_env.py, which the app's and the migration's command run first (secret_env_command): in the process
environment only, never in `environment:`."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config.model import DATABASE_VOLUME, Config
from ..config.project import Project
from .dockerfile import GUNICORN_CONF_PATH
from .names import ACME_CA_DIR, APP_SERVICE, FILES_DIR, acme_ca_name
from .routes_volume import INITIAL_ROUTES, ROUTES, ROUTES_FILE, TRAEFIK_DYNAMIC_DIR, routes_service
from .secrets import (
    DB_PASSWORD_ENV,
    DB_SECRET,
    SECRET_ENV,
    SECRET_ENV_PATH,
    SECRETS_VERSION_ENV,
    SECRETS_VERSION_LABEL,
    app_secret_env,
    app_secret_name,
    needs_secret_env,
    secret_names,
)
from .services import ModeFacts, ServiceSpec, Wait, app_services, logging_options, traefik_healthcheck

__all__ = [
    "DEFAULT_SUBNET_POOL",
    "FILES_SERVICE",
    "compose_mode",
    "compose_service",
    "compose_variables",
    "render_compose",
    "traefik_address",
    "traefik_service",
    "web_subnet",
]


# The one-shot service that copies the app's configs and secrets into the `files` volume (mounted at FILES_DIR,
# read-only, in every service of the app's image).
FILES_SERVICE = "files"


FILES_VOLUME = "files"


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


def compose_variables(doc: dict[str, Any], config: Config) -> dict[str, Any]:
    """Put the deliberate ${COMPOSEKIT_SECRETS_VERSION} in place, after every other string was escaped (literal)."""
    if needs_secret_env(config):
        doc["services"]["app"]["labels"][SECRETS_VERSION_LABEL] = f"${{{SECRETS_VERSION_ENV}:-}}"
    return doc


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


def _config_hash(contents: Mapping[str, str], names: list[str]) -> str:
    """A label value that changes with the content of the configs a service reads, so that Compose recreates the
    service when one changes (Compose itself compares the service definition only)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}\0{len(contents[name])}\0{contents[name]}".encode())
    return digest.hexdigest()[:16]


def traefik_service(config: Config, labels: dict[str, str], networks: Any) -> dict[str, Any]:
    """A Traefik of composekit's (the stack's own, or the shared edge's: render/edge.py): its static file and the
    ACME CA files as configs, the routes volume read-only, the ACME storage volume, ports 80/443 published, no
    capability but binding them."""
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
        "labels": labels,
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
            "networks": networks,
            "logging": logging_options(config),
        }
    )
    return service


def _traefik_service(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    """The stack's own Traefik (edge: own), at its fixed address on `web`; recreated when a config file changes."""
    config = project.config
    names = [*TRAEFIK_CONFIGS, *(acme_ca_name(i) for i in range(len(config.acme.ca_certificates)))]
    labels = {"composekit.config-hash": _config_hash(contents, names)}
    return traefik_service(config, labels, {"web": {"ipv4_address": traefik_address(config)}})


def _routes_service(config: Config, contents: Mapping[str, str]) -> dict[str, Any]:
    """Holds the routes volume read-write: no network, no capabilities, a read-only root. It starts a fresh volume
    with the initial routes (the domain to the app's containers), so that the stack serves the domain even when
    brought up by plain `docker compose up`; `composekit up` then writes each generation here.

    Root inside so that it owns the volume it writes to (with no capability, root can write only what it owns).
    Nothing in the stack mounts the Docker socket: Traefik learns its routes from the files written here."""
    return routes_service(config, ROUTES_FILE, contents[INITIAL_ROUTES])


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
    secrets = secret_names(config)  # what the app's processes read (render/secrets.py)
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


def compose_mode(config: Config) -> ModeFacts:
    """Compose mode's app: gunicorn sizing its workers from the container's CPUs and memory; the secret files in the
    files volume; proxy headers trusted from Traefik's fixed address only."""
    return ModeFacts(
        secrets_dir=FILES_DIR,
        forwarded_allow_ips=traefik_address(config),
        server_command=["gunicorn", "--config", GUNICORN_CONF_PATH, config.app.module],
        server_files=("gunicorn.conf.py",),
    )


_CONDITIONS: dict[Wait, str] = {
    "healthy": "service_healthy",
    "completed": "service_completed_successfully",
    "started": "service_started",
}


def _build(project: Project) -> dict[str, Any]:
    dockerfile = project.dockerfile if project.dockerfile is not None else project.out_dir / "Dockerfile"
    return {
        "context": project.rel(project.app_dir),
        "dockerfile": Path(os.path.relpath(dockerfile, project.app_dir)).as_posix(),
        "args": {"PYTHON_IMAGE": project.config.images.python},
    }


def compose_service(project: Project, spec: ServiceSpec, contents: Mapping[str, str]) -> dict[str, Any]:
    """``spec`` in compose.yaml. The app's image is built by the app's service only (the others never pull it) and
    reads composekit's files and the secrets from the files volume (Compose refuses its own `configs:` and
    `secrets:` in a read-only container); another image gets its secrets as Compose secrets."""
    service: dict[str, Any] = {"build": _build(project)} if spec.name == APP_SERVICE else {}
    service["image"] = spec.image
    if spec.release and spec.name != APP_SERVICE:
        service["pull_policy"] = "never"
    if spec.command is not None:
        service["command"] = spec.command
    service["restart"] = "no" if spec.role == "job" else "always"
    if spec.env_file:
        service["env_file"] = spec.env_file
    if spec.environment:
        service["environment"] = spec.environment
    if spec.secrets and not spec.release:
        service["secrets"] = spec.secrets
    volumes: list[Any] = [_files_mount()] if spec.release else []
    volumes += [f"{name}:{target}" for name, target in spec.volumes]
    if volumes:
        service["volumes"] = volumes
    labels = dict(spec.labels)
    if spec.role == "web":  # a long-running service of the app's image: recreated when a file it reads changes
        labels["composekit.config-hash"] = _config_hash(contents, list(spec.files))
    if labels:
        service["labels"] = labels
    if spec.healthcheck is not None:
        service["healthcheck"] = spec.healthcheck
    if spec.stop_grace_period is not None:
        service["stop_grace_period"] = f"{spec.stop_grace_period}s"
    depends_on = {FILES_SERVICE: {"condition": _CONDITIONS["completed"]}} if spec.release else {}
    depends_on.update({name: {"condition": _CONDITIONS[wait]} for name, wait in spec.waits_for.items()})
    if depends_on:
        service["depends_on"] = depends_on
    deploy: dict[str, Any] = {} if spec.replicas is None else {"replicas": spec.replicas}
    if spec.limits:
        deploy["resources"] = {"limits": spec.limits}
    if deploy:
        service["deploy"] = deploy
    if spec.no_new_privileges:
        service["security_opt"] = ["no-new-privileges:true"]
    if spec.cap_drop:
        service["cap_drop"] = spec.cap_drop
    if spec.cap_add:
        service["cap_add"] = spec.cap_add
    if spec.read_only:
        service["read_only"] = True
        service["tmpfs"] = ["/tmp"]
    if spec.user is not None:
        service["user"] = spec.user
    service["networks"] = spec.networks
    return service


def render_compose(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    """The compose document; ``contents`` are the files it delivers (RenderedStack.configs), by name."""
    config = project.config
    # edge: shared: no Traefik of its own; the shared edge (render/edge.py) joins `web` at traefik_address.
    own = config.edge == "own"
    services: dict[str, Any] = {"traefik": _traefik_service(project, contents)} if own else {}
    services.update({ROUTES: _routes_service(config, contents), FILES_SERVICE: _files_service(config)})
    for name, spec in app_services(project, compose_mode(config)).items():
        services[name] = compose_service(project, spec, contents)
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
        service.setdefault("logging", logging_options(config))
    return doc
