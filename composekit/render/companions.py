"""The app's companions in the compose file (mode: compose): processes/ as services of the app's image, schedules/
as the one `scheduler` service of the app's image, accessories/ as services of their own images. Pure, like
render/compose.py, whose helpers build the processes as they build the app and the migration (the same environment,
secrets, volumes, confinement, log rotation).

Processes get no port and no front network: the database's network, the accessories' network and `processes`, a
network of their own for outbound traffic. Accessories sit on `accessories`, internal (no way out, nothing
published), which the app and the processes join. A secret of an accessory travels as the app's do: a Compose
secret read from a variable of the Compose process that composekit fills from the file (engine/steps.py
compose_secrets); kind: redis gets a Redis ACL file holding the SHA-256 of the password, never the password.
Each accessory with secrets carries a slow hash of them in a label (``${...}``, set after escaping), so that a
changed secret recreates it while an app deploy leaves it alone."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..config.companions import SCHEDULER_SERVICE, Accessory, Process, command_argv
from ..config.model import Config
from ..config.project import Project
from .compose import FILES_SERVICE, compose_mode, compose_service
from .names import APP_SERVICE, DB_SERVICE, FILES_DIR, HEALTH_INTERVAL, MIGRATE_SERVICE
from .secrets import (
    SECRETS_KDF_ITERATIONS,
    SECRETS_VERSION_ENV,
    SECRETS_VERSION_LABEL,
    needs_secret_env,
    secret_env_command,
)
from .services import Wait, logging_options, memory_limit, worker_process

__all__ = [
    "ACCESSORIES_NETWORK",
    "PROCESSES_NETWORK",
    "PROCESS_LABEL",
    "REDIS_HEALTH_USER",
    "SCHEDULER_FILES",
    "SCHEDULER_STATE_DIR",
    "SCHEDULER_STATE_VOLUME",
    "accessory_secret_values",
    "accessory_volume",
    "add_companions",
    "companion_variables",
    "redis_acl",
    "scheduler_files",
]

ACCESSORIES_NETWORK = "accessories"
PROCESSES_NETWORK = "processes"
PROCESS_LABEL = "composekit.process"
PROCESS_START_PERIOD = 30
REDIS_PORT = 6379
REDIS_DATA = "/data"
REDIS_ACL = "redis.acl"
# A user that may only PING (nopass: any password): the healthcheck needs no secret in the container's config.
REDIS_HEALTH_USER = "healthcheck"
# The scheduler's files in the files volume, its own volume (the lock and state.json) and where it is mounted.
SCHEDULER_FILES = ("scheduler.py", "cronsim.py")
SCHEDULER_STATE_VOLUME = "scheduler-state"
SCHEDULER_STATE_DIR = "/var/lib/composekit-scheduler"
# Between the longest job's timeout and SIGKILL: the scheduler's own kill of a timed-out job (runtime/scheduler.py
# KILL_AFTER, 10 s) and its exit.
SCHEDULER_STOP_MARGIN = 20


def accessory_volume(accessory: str, volume: str) -> str:
    """The stack's volume of an accessory's ``volume`` (named apart from app/volumes' by the accessory's name)."""
    return f"{accessory}-{volume}"


def _variable(*parts: str) -> str:
    """A variable of the Compose process, unique per parts ("-" of a name is no variable character)."""
    readable = "_".join(parts).upper().replace("-", "_").replace(".", "_")
    return f"COMPOSEKIT_ACCESSORY_{readable}_{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:6].upper()}"


def _secrets(name: str, accessory: Accessory) -> dict[str, str]:
    """Compose secret -> the variable of the Compose process that carries it, for one accessory."""
    if accessory.kind == "redis":
        return {f"{name}_acl": _variable(name, "acl")}
    return {f"{name}_{secret}": _variable(name, secret) for secret in sorted(accessory.secrets)}


def _version_variable(name: str) -> str:
    return _variable(name, "version")


def redis_acl(password: str) -> str:
    """Redis's ACL file: the default user with the password's SHA-256 (not the password), every command; the
    healthcheck's user with PING only."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user default on #{digest} ~* &* +@all\nuser {REDIS_HEALTH_USER} on nopass -@all +ping\n"


def accessory_secret_values(config: Config, read: Callable[[str, str], str]) -> dict[str, str]:
    """The Compose process's variables for the accessories' secrets, and the version label of each accessory that
    has secrets. ``read(key path, file)`` reads a file named in the config (trailing newlines kept)."""
    values: dict[str, str] = {}
    for name, accessory in sorted(config.accessories.items()):
        own: dict[str, str] = {}
        if accessory.kind == "redis":
            assert accessory.password_file is not None
            password = read(f"accessories/{name}/password_file", accessory.password_file).rstrip("\n")
            own[_variable(name, "acl")] = redis_acl(password)
        for secret, path in sorted(accessory.secrets.items()):
            own[_variable(name, secret)] = read(f"accessories/{name}/secrets/{secret}", path)
        if own:
            data = "".join(f"{k}\0{len(v)}\0{v}" for k, v in sorted(own.items())).encode()
            salt = f"composekit-accessory:{config.name}:{name}".encode()
            version = hashlib.pbkdf2_hmac("sha256", data, salt, SECRETS_KDF_ITERATIONS).hex()[:12]
            values.update(own)
            values[_version_variable(name)] = version
    return values


def companion_variables(doc: dict[str, Any], config: Config) -> dict[str, Any]:
    """After escaping (render/text.py literal): the processes carry the app's secrets version (a changed secret
    replaces them as it replaces the app), each accessory with secrets its own."""
    services = doc["services"]
    if needs_secret_env(config):
        for name in [*config.processes, *([SCHEDULER_SERVICE] if config.schedules else [])]:
            services[name]["labels"][SECRETS_VERSION_LABEL] = f"${{{SECRETS_VERSION_ENV}:-}}"
    for name, accessory in config.accessories.items():
        if _secrets(name, accessory):
            services[name]["labels"][SECRETS_VERSION_LABEL] = f"${{{_version_variable(name)}:-}}"
    return doc


def _process_service(project: Project, name: str, process: Process, contents: Mapping[str, str]) -> dict[str, Any]:
    """A process: the app's process (render/services.py worker_process: the app's environment, secrets, volumes,
    user and confinement) with its own command, replicas, limits, healthcheck and stop grace, on the database's,
    the accessories' and its own outbound network (no front network, no port)."""
    config = project.config
    spec = worker_process(project, compose_mode(config), name, command_argv(process.command))
    if process.health_command is None:
        healthcheck: dict[str, Any] = {"disable": True}  # not the image's own (an HTTP check of the app, say)
    else:
        argv = secret_env_command(config, command_argv(process.health_command), compose_mode(config).secrets_dir)
        healthcheck = {
            "test": ["CMD", *argv],
            "interval": HEALTH_INTERVAL,
            "timeout": "4s",
            "retries": 3,
            "start_period": f"{PROCESS_START_PERIOD}s",
        }
    waits: dict[str, Wait] = dict(spec.waits_for)
    if config.migrate.command is not None:
        waits[MIGRATE_SERVICE] = "completed"
    for accessory in sorted(config.accessories):
        waits[accessory] = _started(config.accessories[accessory])
    # Its own cpus/memory (a worker's needs are not the web server's); the app's process count bound.
    limits: dict[str, str | int] = {}
    if process.cpus is not None:
        limits["cpus"] = f"{process.cpus:g}"
    if process.memory is not None:
        limits["memory"] = memory_limit(process.memory)
    limits["pids"] = config.app.pids_limit
    networks = [DB_SERVICE] if config.database is not None else []
    networks += [ACCESSORIES_NETWORK] if config.accessories else []
    spec = replace(
        spec,
        healthcheck=healthcheck,
        stop_grace_period=process.stop_grace,
        waits_for=waits,
        limits=limits,
        replicas=process.replicas,
        labels={PROCESS_LABEL: name},
        networks=[*networks, PROCESSES_NETWORK],
    )
    return compose_service(project, spec, contents)


def scheduler_files() -> dict[str, str]:
    """runtime/scheduler.py and the module of the installed cronsim (pure Python, standard library only: the library
    that checked the cron expressions at load runs them too), delivered through the files volume: nothing is added to
    the app's image and nothing is fetched at deploy time."""
    spec = importlib.util.find_spec("cronsim.cronsim")
    assert spec is not None and spec.origin is not None, "cronsim is a dependency of composekit"
    return {
        "scheduler.py": resources.files("composekit.runtime").joinpath("scheduler.py").read_text(encoding="utf-8"),
        "cronsim.py": Path(spec.origin).read_text(encoding="utf-8"),
    }


def _scheduler_service(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    """The one scheduler of schedules/ (runtime/scheduler.py): the app's process (worker_process: the app's
    environment, secrets, volumes, user and confinement; the jobs inherit them) with one replica, its own state
    volume, no port and no front network. Recreated stop-first by Compose (never two at once; its flock covers the
    rest), with a stop grace past the longest timeout so that a running job finishes before the new one starts."""
    config = project.config
    jobs = {
        name: {"cron": s.cron, "argv": command_argv(s.command), "timeout": s.timeout}
        for name, s in sorted(config.schedules.items())
    }
    argv = ["python3", f"{FILES_DIR}/scheduler.py", SCHEDULER_STATE_DIR, json.dumps(jobs, sort_keys=True)]
    spec = worker_process(project, compose_mode(config), SCHEDULER_SERVICE, argv)
    waits: dict[str, Wait] = dict(spec.waits_for)
    if config.migrate.command is not None:
        waits[MIGRATE_SERVICE] = "completed"
    for accessory in sorted(config.accessories):
        waits[accessory] = _started(config.accessories[accessory])
    networks = [DB_SERVICE] if config.database is not None else []
    networks += [ACCESSORIES_NETWORK] if config.accessories else []
    digest = hashlib.sha256("".join(contents[name] for name in SCHEDULER_FILES).encode()).hexdigest()[:16]
    spec = replace(
        spec,
        healthcheck={"disable": True},
        stop_grace_period=max(s.timeout for s in config.schedules.values()) + SCHEDULER_STOP_MARGIN,
        waits_for=waits,
        limits={"pids": config.app.pids_limit},
        replicas=1,
        # A new scheduler.py or cronsim.py in the files volume recreates it.
        labels={"composekit.scheduler-files": digest},
        volumes=[*spec.volumes, (SCHEDULER_STATE_VOLUME, SCHEDULER_STATE_DIR)],
        networks=[*networks, PROCESSES_NETWORK],
    )
    return compose_service(project, spec, contents)


def _add_scheduler(doc: dict[str, Any], project: Project, contents: Mapping[str, str]) -> None:
    doc["services"][SCHEDULER_SERVICE] = _scheduler_service(project, contents)
    doc["services"][SCHEDULER_SERVICE]["logging"] = logging_options(project.config)
    doc["volumes"][SCHEDULER_STATE_VOLUME] = {}
    doc["networks"][PROCESSES_NETWORK] = {}
    files = doc["services"][FILES_SERVICE]
    for name in SCHEDULER_FILES:
        doc["configs"][name] = {"content": contents[name]}
        files["configs"].append({"source": name, "target": f"{FILES_DIR}/{name}"})
        files["command"].append(f"{FILES_DIR}/{name}")


def _started(accessory: Accessory) -> Wait:
    healthy = accessory.kind == "redis" or accessory.healthcheck is not None
    return "healthy" if healthy else "started"


def _healthcheck(command: str | tuple[str, ...]) -> dict[str, Any]:
    test = ["CMD-SHELL", command] if isinstance(command, str) else ["CMD", *command]
    return {"test": test, "interval": HEALTH_INTERVAL, "timeout": "4s", "retries": 5, "start_period": "30s"}


def _accessory_service(config: Config, name: str, accessory: Accessory) -> dict[str, Any]:
    secrets = _secrets(name, accessory)
    if accessory.kind == "redis":
        image = config.images.redis
        command: list[str] | None = [
            "redis-server",
            "--aclfile",
            f"/run/secrets/{REDIS_ACL}",
            "--dir",
            REDIS_DATA,
            "--appendonly",
            "yes",
        ]
        volumes = {"data": REDIS_DATA}
        mounts = [{"source": next(iter(secrets)), "target": REDIS_ACL}]
        probe = f"redis-cli --no-auth-warning --user {REDIS_HEALTH_USER} --pass none ping | grep -q PONG"
        healthcheck: dict[str, Any] | None = _healthcheck(probe)
    else:
        assert accessory.image is not None
        image = accessory.image
        command = None if accessory.command is None else command_argv(accessory.command)
        volumes = dict(accessory.volumes)
        mounts = [{"source": f"{name}_{s}", "target": s} for s in sorted(accessory.secrets)]
        healthcheck = None if accessory.healthcheck is None else _healthcheck(accessory.healthcheck)
    service: dict[str, Any] = {"image": image}
    if command is not None:
        service["command"] = command
    service["restart"] = "always"
    if accessory.environment:
        service["environment"] = {k: accessory.environment[k] for k in sorted(accessory.environment)}
    if mounts:
        service["secrets"] = mounts
    if volumes:
        service["volumes"] = [f"{accessory_volume(name, v)}:{path}" for v, path in sorted(volumes.items())]
    service["labels"] = {"composekit.accessory": name}
    if healthcheck is not None:
        service["healthcheck"] = healthcheck
    service["stop_grace_period"] = "30s"
    # Capabilities kept, as the database's: official images start as root, take their data directory and drop to
    # their own user.
    service["security_opt"] = ["no-new-privileges:true"]
    service["networks"] = [ACCESSORIES_NETWORK]
    service["logging"] = logging_options(config)
    return service


def _accessory_volumes(name: str, accessory: Accessory) -> list[str]:
    names = ["data"] if accessory.kind == "redis" else sorted(accessory.volumes)
    return [accessory_volume(name, v) for v in names]


def add_companions(doc: dict[str, Any], project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    """Put the processes and the accessories into the compose document (render/compose.py render_compose's)."""
    config = project.config
    if config.schedules:
        _add_scheduler(doc, project, contents)
    if not config.processes and not config.accessories:
        return doc
    services, networks = doc["services"], doc["networks"]
    volumes = doc.setdefault("volumes", {})
    secrets: Mapping[str, str]
    for name, accessory in sorted(config.accessories.items()):
        services[name] = _accessory_service(config, name, accessory)
        for volume in _accessory_volumes(name, accessory):
            volumes[volume] = {}
        secrets = _secrets(name, accessory)
        for secret, variable in secrets.items():
            doc.setdefault("secrets", {})[secret] = {"environment": variable}
    for name, process in sorted(config.processes.items()):
        services[name] = _process_service(project, name, process, contents)
        services[name]["logging"] = logging_options(config)
    if config.accessories:
        networks[ACCESSORIES_NETWORK] = {"internal": True}
        services[APP_SERVICE]["networks"].append(ACCESSORIES_NETWORK)
    if config.processes:
        networks[PROCESSES_NETWORK] = {}
    return doc
