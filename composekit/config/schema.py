"""The JSON Schema of composekit.yaml, for editors (yaml-language-server) and CI.

Pydantic derives the schema from the models: a constrained field (config/model.py, sections.py, fields.py:
``Field(ge=..., le=..., pattern=...)`` with ``Strict()``) gives its range or pattern to validation and to the schema
alike. Only the
fields whose ``mode="before"`` validators accept other types than their annotation (``"512M"`` for an ``int``
memory size, a list for a command tuple) or check what a JSON Schema keyword cannot name the loader's way need
an entry in ``OVERRIDES``; tests/unit/test_schema.py fails when a before-validator has none, so the schema cannot
silently drift from the loader.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .companions import COMPANION_NAME_RE, RESERVED_NAMES
from .environment import _ENV_KEY_RE
from .fields import _DOMAIN_RE, _NODE_NAME_RE, _VOLUME_NAME_RE, CONTAINER_PATH_RE, URL_PATH_RE
from .model import LINUX_CAPABILITIES, Config

__all__ = ["DESCRIPTIONS", "OVERRIDES", "SCHEMA_DIALECT", "config_schema", "schema_json"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_URL_PATH: dict[str, Any] = {"type": "string", "pattern": URL_PATH_RE.pattern}
_POSITIVE_INT: dict[str, Any] = {"type": "integer", "minimum": 1}
_NULL: dict[str, Any] = {"type": "null"}
_MEMORY: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "pattern": r"^\s*\d+(\.\d+)?\s*[kKmMgGtT]?[iI]?[bB]?\s*$",
            "examples": ["512M", "1G", "256MiB"],
        },
        _POSITIVE_INT,
    ]
}
_IMAGE: dict[str, Any] = {"type": "string", "pattern": r"^\w[\w./:@-]*$"}
_COMMAND: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"\S"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        _NULL,
    ]
}

_OPTIONAL_COMMAND: dict[str, Any] = _COMMAND
_REQUIRED_COMMAND: dict[str, Any] = {"anyOf": _COMMAND["anyOf"][:2]}
_COMPANION_NAMES: dict[str, Any] = {"pattern": COMPANION_NAME_RE.pattern, "not": {"enum": list(RESERVED_NAMES)}}
_VOLUMES: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": _VOLUME_NAME_RE.pattern},
    "additionalProperties": {
        "type": "string",
        "pattern": CONTAINER_PATH_RE.pattern,
        "not": {"pattern": r"/\.\.?(/|$)"},
    },
}

# (model, field) -> the schema of what the field's before-validator accepts; replaces pydantic's derived one.
OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("Acme", "email"): {"anyOf": [{"type": "string", "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"}, _NULL]},
    ("Acme", "ca_server"): {"anyOf": [{"enum": ["production", "staging"]}, {"type": "string", "pattern": "^https://"}]},
    ("App", "health_path"): _URL_PATH,
    ("App", "workdir"): {
        "type": "string",
        "pattern": r"^(\.|(?!\.\.?(/|$))[^/\\]+(/(?!\.\.?(/|$))[^/\\]+)*)$",
        "examples": ["backend"],
    },
    ("App", "workers"): {"anyOf": [{"const": "auto"}, _POSITIVE_INT]},
    ("App", "memory"): {"anyOf": [*_MEMORY["anyOf"], _NULL]},
    ("App", "worker_memory"): _MEMORY,
    ("App", "environment"): {
        "type": "object",
        "propertyNames": {"pattern": _ENV_KEY_RE.pattern},
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    },
    ("App", "secrets"): {
        "type": "object",
        "propertyNames": {"pattern": _ENV_KEY_RE.pattern},
        "additionalProperties": {"type": "string", "pattern": r"\S"},
    },
    ("App", "volumes"): {
        "type": "object",
        "propertyNames": {"pattern": _VOLUME_NAME_RE.pattern, "not": {"enum": ["acme", "routes", "files"]}},
        "additionalProperties": {
            "type": "string",
            "pattern": CONTAINER_PATH_RE.pattern,
            "not": {"pattern": r"/\.\.?(/|$)"},
        },
    },
    ("App", "cap_add"): {"type": "array", "items": {"enum": sorted(LINUX_CAPABILITIES)}},
    ("Config", "domain"): {
        "anyOf": [
            {"type": "string", "pattern": _DOMAIN_RE.pattern, "examples": ["shop.example.com"]},
            {
                "type": "array",
                "items": {"type": "string", "pattern": _DOMAIN_RE.pattern},
                "minItems": 1,
                "uniqueItems": True,
            },
        ]
    },
    ("Config", "host"): {
        "anyOf": [
            {"type": "string", "pattern": r"^(ssh://[^/?#\s]+(/[^?#\s]*)?|unix:///\S+|tcp://[^/?#\s]+/?)$"},
            {"type": "string", "pattern": r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$"},
            _NULL,
        ]
    },
    ("Swarm", "nodes"): {
        "type": "object",
        "propertyNames": {"pattern": _NODE_NAME_RE.pattern},
        "additionalProperties": {
            "anyOf": [
                {"type": "string", "pattern": r"^(ssh://[^/?#\s]+(/[^?#\s]*)?|unix:///\S+|tcp://[^/?#\s]+/?)$"},
                {"type": "string", "pattern": r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$"},
            ]
        },
    },
    ("Logging", "max_size"): _MEMORY,
    ("Migrate", "command"): _COMMAND,
    ("Migrate", "state_command"): _COMMAND,
    ("Database", "password_file"): {"type": "string", "pattern": r"\S"},
    ("Images", "python"): _IMAGE,
    ("Images", "traefik"): _IMAGE,
    ("Images", "postgres"): _IMAGE,
    ("Images", "redis"): _IMAGE,
    ("Config", "processes"): {
        "type": "object",
        "propertyNames": _COMPANION_NAMES,
        # a bare command line or list is the process's command
        "additionalProperties": {"anyOf": [*_REQUIRED_COMMAND["anyOf"], {"$ref": "#/$defs/Process"}]},
    },
    ("Config", "accessories"): {
        "type": "object",
        "propertyNames": _COMPANION_NAMES,
        "additionalProperties": {"$ref": "#/$defs/Accessory"},
    },
    ("Config", "schedules"): {
        "type": "object",
        "propertyNames": _COMPANION_NAMES,
        "additionalProperties": {"$ref": "#/$defs/Schedule"},
    },
    # Five fields; cronsim (the scheduler's library) checks the rest when the config is loaded.
    ("Schedule", "cron"): {"type": "string", "pattern": r"^\s*\S+(\s+\S+){4}\s*$", "examples": ["*/5 * * * *"]},
    ("Schedule", "command"): _REQUIRED_COMMAND,
    ("Backups", "keep"): {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"$ref": "#/$defs/BackupKeep"}, _NULL]
    },
    ("Backups", "schedule"): {
        "anyOf": [{"type": "string", "pattern": r"^\s*\S+(\s+\S+){4}\s*$", "examples": ["0 3 * * *"]}, _NULL]
    },
    ("Process", "command"): _REQUIRED_COMMAND,
    ("Process", "health_command"): _OPTIONAL_COMMAND,
    ("Process", "memory"): {"anyOf": [*_MEMORY["anyOf"], _NULL]},
    ("Accessory", "image"): {"anyOf": [_IMAGE, _NULL]},
    ("Accessory", "command"): _OPTIONAL_COMMAND,
    ("Accessory", "healthcheck"): _OPTIONAL_COMMAND,
    ("Accessory", "volumes"): _VOLUMES,
    ("Accessory", "environment"): {
        "type": "object",
        "propertyNames": {"pattern": _ENV_KEY_RE.pattern},
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    },
    ("Accessory", "secrets"): {
        "type": "object",
        "propertyNames": {"pattern": r"^[a-z0-9][a-z0-9_-]*$"},
        "additionalProperties": {"type": "string", "pattern": r"\S"},
    },
    ("Accessory", "password_file"): {"anyOf": [{"type": "string", "pattern": r"\S"}, _NULL]},
    ("Smoke", "resolve"): {"anyOf": [{"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}, _NULL]},
    ("SmokeCheck", "path"): _URL_PATH,
    ("Network", "subnet"): {
        "anyOf": [{"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-8])$"}, _NULL]
    },
}

# Shown by editors on hover and completion.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("Config", "name"): "Compose project name: containers, volumes, networks and the app image are named after it.",
    ("Config", "domain"): "The DNS name pointing at this server, or a list of them; Traefik obtains a certificate over "
    "ACME for each.",
    ("Config", "www"): '"none", "redirect_to_apex" (www.<domain> answers a permanent redirect to each listed domain) '
    'or "redirect_to_www" (each listed domain is a www. name; its apex redirects to it).',
    ("Config", "edge"): '"own" (the stack runs its own Traefik) or "shared" (one edge Traefik per engine, the '
    "composekit-edge project, routes this app beside others; mode: compose only).",
    ("Config", "acme"): "The ACME certificate authority and challenge.",
    ("Config", "app"): "The FastAPI app: where it is, how it is served and sized.",
    ("Config", "host"): "The Docker engine to deploy to: ssh://[user@]host[:port] (an SSH config alias works; a path "
    "after it names the server's Docker socket, /var/run/docker.sock by default), unix:///path, tcp://host:port "
    "or a Docker context name. --host overrides it; unset: DOCKER_HOST, then the "
    "current Docker context.",
    ("Config", "mode"): '"compose" (one engine, `docker compose`) or "swarm" (a Swarm cluster, `docker stack '
    "deploy`: replicas, a migration job, Traefik's Swarm provider; see docs/swarm.md).",
    ("Config", "swarm"): "mode: swarm: the nodes of the cluster.",
    ("Config", "registry"): 'mode: swarm: an image repository prefix such as "registry.example.com/team"; the release '
    "image is pushed to <registry>/<name>-app instead of being shipped to each node's engine.",
    ("Swarm", "nodes"): "Node hostname -> its Docker engine (ssh://, unix://, tcp:// or a context name), through which "
    "composekit ships the release image to that node when no registry is set.",
    ("App", "replicas"): "mode: swarm: tasks of the app service, one process each (COMPOSEKIT_APP_REPLICAS "
    "overrides it at deploy).",
    ("App", "placement"): 'mode: swarm: Swarm placement constraints of the app, such as "node.labels.zone == a".',
    ("Config", "migrate"): "A one-shot command run on the app image before the app starts, on every deploy.",
    ("Config", "database"): "A PostgreSQL service (`db`) with a named volume; the password comes from a file "
    "mounted as a Docker secret and never appears in the rendered files.",
    ("Config", "images"): "Base and service images.",
    ("Config", "ports"): "Host ports Traefik publishes.",
    ("Config", "smoke"): "Checks `composekit smoke` runs against the deployed stack.",
    ("Config", "network"): "The front network `web` shared by Traefik and the app.",
    ("Network", "subnet"): 'Private IPv4 subnet of `web`, /16 to /28, such as "10.213.7.0/24"; Traefik gets its '
    "second address and the app trusts proxy headers from it only. Default: a /24 in 10.128.0.0/9 derived from name.",
    ("Acme", "email"): "Contact address for expiry notices.",
    ("Acme", "ca_server"): '"production", "staging" (Let\'s Encrypt) or the https:// URL of any ACME directory.',
    (
        "Acme",
        "ca_certificates",
    ): "PEM files of a private ACME CA to trust (paths relative to the first config file's directory).",
    ("Acme", "challenge"): '"http" (HTTP-01 on port 80) or "tls" (TLS-ALPN-01 on port 443).',
    ("App", "path"): "The app directory (build context), relative to the first config file's directory.",
    ("App", "workdir"): 'Where the app\'s code runs, relative to app/path (a workspace member such as "backend" '
    "when the lock file is at the root): the generated Dockerfile's WORKDIR, the only directory it copies, on "
    "PYTHONPATH.",
    ("App", "dockerfile"): "The app's own Dockerfile, relative to app/path; without it composekit generates one.",
    ("App", "module"): 'The ASGI app gunicorn serves, "package.module:attribute".',
    ("App", "port"): "The port the app listens on inside its container.",
    ("App", "health_path"): "Answers 200 to GET when the app is ready; the healthcheck and Traefik rely on it.",
    ("App", "workers"): '"auto" (sized at start from the container\'s CPUs and memory) or a fixed count.',
    ("App", "workers_per_core"): "Workers per available CPU when workers is auto.",
    ("App", "max_workers"): "Upper bound for the automatic worker count.",
    ("App", "worker_memory"): 'Memory one worker needs ("256M"); caps the automatic worker count under app/memory.',
    ("App", "cpus"): "CPU limit of the app container.",
    ("App", "memory"): 'Memory limit of the app container, such as "512M" or "1G".',
    ("App", "env_file"): "File with the app's secrets (VARIABLE=value), referenced by the compose file, never copied.",
    ("App", "environment"): "Non-secret environment variables; names that look secret are refused (use env_file).",
    ("App", "secrets"): "Secret environment variables: VARIABLE -> a file on the deploying machine holding its value "
    "(relative to the first config file's directory, keep it out of git); set in the app's and the migration's "
    "process environment only, never in a rendered file or `docker inspect`.",
    ("App", "volumes"): "Named volumes: name -> absolute path in the container; data survives redeploys.",
    ("App", "read_only"): "Read-only root filesystem for the app and the migration (writable: /tmp, volumes).",
    ("App", "pids_limit"): "Most processes and threads the app container (and the migration) may run.",
    ("App", "cap_add"): "Linux capabilities given back to the app and the migration (all are dropped).",
    ("Config", "logging"): "Log rotation of every service.",
    ("Config", "releases"): "Release history kept on the engine (`composekit releases`, `composekit rollback`).",
    ("Releases", "keep"): "Release images kept; older ones are untagged after each deploy (the serving one never).",
    ("Releases", "rollback_on_error"): "Switch back to the previous release when a probe fails during the switch "
    "(`up --rollback-on-error`); the flag --rollback-on-error/--no-rollback-on-error overrides it.",
    ("Logging", "driver"): '"json-file" or "local": where the engine keeps the logs.',
    ("Logging", "max_size"): 'Size of one log file before rotation, such as "10m".',
    ("Logging", "max_file"): "Log files kept per container (the current one included).",
    ("Migrate", "command"): 'A command line or argument list, such as "alembic upgrade head".',
    ("Migrate", "state_command"): "Prints the database's migration state after the migration, recorded with the "
    "release (run like the migration). Default: `alembic current` when command runs alembic, else unknown.",
    ("Migrate", "backward_compatible"): "Whether older releases' code runs on a database migrated since: false makes "
    "`composekit rollback` refuse to cross a migration, even with --yes.",
    ("Database", "engine"): "The database server; postgres (the official image's interface).",
    ("Database", "name"): "Database created at the first start (POSTGRES_DB); the app gets DATABASE_NAME.",
    ("Database", "user"): "Owner of the database (POSTGRES_USER); the app gets DATABASE_USER.",
    (
        "Database",
        "password_file",
    ): "File holding the password (relative to the first config file's directory, keep it out of git); "
    "mounted at /run/secrets/db_password, the app gets DATABASE_PASSWORD_FILE.",
    ("Database", "variables"): '"composekit" (DATABASE_HOST, _PORT, _NAME, _USER, DATABASE_PASSWORD_FILE), '
    '"database_url" (DATABASE_URL, password included) or "postgres" (POSTGRES_SERVER, _PORT, _DB, _USER, '
    "POSTGRES_PASSWORD): the names the app reads; a password only in the process environment, never in "
    "`docker inspect`.",
    ("Database", "url_scheme"): 'The scheme of DATABASE_URL with variables: database_url, such as "postgresql+asyncpg" '
    'or "postgresql+psycopg" (SQLAlchemy drivers).',
    ("Images", "python"): "Base image of the generated Dockerfile.",
    ("Images", "traefik"): "Traefik image.",
    ("Images", "postgres"): "PostgreSQL image (data in /var/lib/postgresql/data, as postgres:17 and earlier).",
    ("Config", "processes"): "More commands of the app's image run beside it (queue workers): name -> a command "
    "line, or its settings. The app's environment, secrets, volumes and confinement; no port; deployed with each "
    "release after the migration (docs/companions.md).",
    ("Config", "accessories"): "Other images beside the app (Redis first): name -> image, command, volumes, "
    "environment, secrets, healthcheck, or kind: redis. On an internal network with the app and the processes; "
    "recreated only when their own definition changes (docs/companions.md).",
    ("Config", "schedules"): "Commands of the app's image on a cron schedule (UTC), run by the stack's one scheduler "
    "service: name -> cron, command, timeout. Never two schedulers at once, missed times caught up once; the last "
    "run in `composekit status` (docs/companions.md#schedules).",
    ("Schedule", "cron"): "A cron expression of 5 fields (minute hour day-of-month month day-of-week, UTC), such as "
    '"*/5 * * * *".',
    ("Schedule", "command"): 'The command line or argument list, such as "python -m app.jobs.cleanup".',
    ("Schedule", "timeout"): "Seconds a run may take; then it is killed (SIGTERM, SIGKILL 10 s later) and recorded as "
    "timed out.",
    ("Process", "command"): 'The command line or argument list, such as "arq app.worker.WorkerSettings".',
    ("Process", "replicas"): "Containers of the process.",
    ("Process", "cpus"): "CPU limit of each container.",
    ("Process", "memory"): 'Memory limit of each container, such as "512M".',
    ("Process", "health_command"): "Exits 0 while the process is healthy; `up` waits for it before the web switch.",
    ("Process", "stop_grace"): "Seconds between SIGTERM and SIGKILL when a release replaces it (to finish its job).",
    ("Accessory", "kind"): '"image" (describe it yourself) or "redis" (image, command, data volume, healthcheck '
    "and password set by composekit).",
    ("Accessory", "image"): "The accessory's image (kind: redis: images/redis).",
    ("Accessory", "command"): "The command, overriding the image's.",
    ("Accessory", "volumes"): "Named volumes: name -> absolute path in the container (kept across deploys).",
    ("Accessory", "environment"): "Non-secret environment variables; secrets go under secrets.",
    ("Accessory", "secrets"): "Secret name -> file on the deploying machine; in the container at /run/secrets/<name>.",
    ("Accessory", "healthcheck"): "A command line (run by the image's shell) or argument list that exits 0 when "
    "healthy.",
    ("Accessory", "password_file"): "kind: redis: the file holding Redis's password (keep it out of git).",
    ("Images", "redis"): "Image of accessories of kind: redis.",
    ("Backups", "schedule"): 'A cron expression (5 fields, UTC), such as "0 3 * * *": the stack backs itself up '
    "(services backup and backup-db; docs/backups.md#scheduled-backups). Default: only `composekit backup` makes one.",
    ("Backups", "timeout"): "Seconds a scheduled backup (dump, archives, verification) may take; then it is stopped "
    "and fails.",
    ("Backups", "keep"): "After a verified backup, which older ones are deleted: a number (every backup older than "
    "the N-th newest verified one) or {daily: N, weekly: N}; default: none.",
    ("BackupKeep", "daily"): "Keep the newest verified backup of each of the N newest UTC days that have one.",
    ("BackupKeep", "weekly"): "Keep the newest verified backup of each of the N newest ISO weeks that have one.",
    ("Ports", "http"): "Host port for HTTP (redirects to HTTPS; HTTP-01 challenges).",
    ("Ports", "https"): "Host port for HTTPS.",
}


def _fields(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from ``model``, by name."""
    found: dict[str, type[BaseModel]] = {model.__name__: model}
    for field in model.model_fields.values():
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner.__name__ not in found:
                    found.update(_fields(inner))
    return found


def config_schema() -> dict[str, Any]:
    """The JSON Schema of composekit.yaml: pydantic's, corrected where validators accept other types."""
    schema = Config.model_json_schema()
    definitions: dict[str, Any] = schema.get("$defs", {})
    for name in _fields(Config):
        target = schema if name == "Config" else definitions[name]
        for field, prop in target.get("properties", {}).items():
            replacement = OVERRIDES.get((name, field))
            if replacement is not None:
                kept = {k: prop[k] for k in ("title", "default") if k in prop}
                prop.clear()
                prop.update(kept)
                prop.update(json.loads(json.dumps(replacement)))
            description = DESCRIPTIONS.get((name, field))
            if description:
                prop["description"] = description
    schema["title"] = "composekit.yaml"
    schema["description"] = "A FastAPI app deployed by composekit: Traefik with ACME, Gunicorn/Uvicorn, Docker Compose."
    return {"$schema": SCHEMA_DIALECT, **schema}


def schema_json() -> str:
    """The schema as stable, pretty JSON (what `composekit schema` prints and `init` writes)."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"
