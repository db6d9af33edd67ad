"""The rules of the app's environment variables: composekit's own variables (app, database, worker settings),
which app/environment and app/secrets may not set, and the checks of those two keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .fields import got
from .redact import secret_name_word, secret_value_kind

__all__ = [
    "APP_VARIABLES",
    "DATABASE_URL_VARIABLES",
    "DATABASE_VARIABLES",
    "DATABASE_VARIABLE_SETS",
    "POSTGRES_VARIABLES",
    "WORKER_VARIABLES",
    "check_environment",
    "check_secrets",
]

_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")
_USE_ENV_FILE = "put it in app/env_file, so it never lands in the rendered files or `composekit config`"

# composekit's own variables in the app container, each with what to set instead. render/services.py renders only
# these (and tests/unit/test_environment_rules.py checks it); app/environment may not override them.
APP_VARIABLES: dict[str, str] = {
    "APP_PORT": "set app/port instead",
    "GRACEFUL_TIMEOUT": "composekit sets it to match the container's stop grace period; it cannot be changed",
    "WORKERS_PER_CORE": "set app/workers_per_core instead",
    "WORKER_MEMORY_MB": "set app/worker_memory instead",
    "MAX_WORKERS": "set app/max_workers instead",
    "WEB_CONCURRENCY": "set app/workers instead",
    "FORWARDED_ALLOW_IPS": "composekit limits it to Traefik's network; it cannot be changed",
    "DRAIN_SECONDS": "composekit sets it in mode: swarm to match Traefik's poll of the engine; it cannot be changed",
}
# Set in the app and the migration when a database is configured.
DATABASE_VARIABLES: dict[str, str] = {
    "DATABASE_HOST": "composekit points it at the database service; it cannot be changed",
    "DATABASE_PORT": "composekit points it at the database service; it cannot be changed",
    "DATABASE_NAME": "set database/name instead",
    "DATABASE_USER": "set database/user instead",
    "DATABASE_PASSWORD_FILE": "set database/password_file instead",
}
# database/variables: database_url and postgres, the names FastAPI apps read (FastAPI's full-stack template reads
# the POSTGRES_* set). The password reaches the process environment only (runtime/secret_env.py), never the
# container's configuration.
DATABASE_URL_VARIABLES: dict[str, str] = {
    "DATABASE_URL": "composekit builds it from database/ (the password from database/password_file); set "
    "database/url_scheme for another driver",
}
POSTGRES_VARIABLES: dict[str, str] = {
    "POSTGRES_SERVER": "composekit points it at the database service; it cannot be changed",
    "POSTGRES_PORT": "composekit points it at the database service; it cannot be changed",
    "POSTGRES_DB": "set database/name instead",
    "POSTGRES_USER": "set database/user instead",
    "POSTGRES_PASSWORD": "set database/password_file instead",
}
DATABASE_VARIABLE_SETS: dict[str, dict[str, str]] = {
    "composekit": DATABASE_VARIABLES,
    "database_url": DATABASE_URL_VARIABLES,
    "postgres": POSTGRES_VARIABLES,
}
# The worker settings an app/env_file may set instead of the config (the old official image's convention):
# variable -> App field. render/services.py renders each only when the config sets the field explicitly.
WORKER_VARIABLES: dict[str, str] = {
    "WORKERS_PER_CORE": "workers_per_core",
    "WORKER_MEMORY_MB": "worker_memory",
    "MAX_WORKERS": "max_workers",
    "WEB_CONCURRENCY": "workers",
}


def check_environment(v: Any, fix: str = _USE_ENV_FILE, own: Mapping[str, str] = APP_VARIABLES) -> dict[str, str]:
    """app/environment (an accessory's too, with its own ``fix`` and no ``own`` variables): a mapping of variable
    names to strings (numbers and booleans as text); neither composekit's own variables nor anything that looks
    like a secret (``fix`` says where a secret goes instead)."""
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping of VARIABLE: value, got {got(v)}")
    out: dict[str, str] = {}
    for key, value in v.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise ValueError(f"expected environment variable names, got {got(key)}")
        if key in own:
            raise ValueError(f"{key} is composekit's own variable: {own[key]}")
        word = secret_name_word(key)
        if word is not None:
            raise ValueError(f"{key} looks like a secret (its name ends in {word}); {fix}")
        if isinstance(value, (dict, list)) or value is None:
            raise ValueError(f"{key}: expected a string, number or boolean, got {got(value)}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        kind = secret_value_kind(text)
        if kind is not None:
            raise ValueError(f"{key}: the value {kind}; {fix}")
        out[key] = text
    return out


def check_secrets(v: Any) -> Any:
    """app/secrets: a mapping of variable names to the paths of the files that hold their values."""
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping of VARIABLE: path of the file that holds its value, got {got(v)}")
    for key, value in v.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise ValueError(f"expected environment variable names, got {got(key)}")
        if key in APP_VARIABLES:
            raise ValueError(f"{key} is composekit's own variable: {APP_VARIABLES[key]}")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"{key}: expected the path of a file that holds the value, such as secrets/{key.lower()}, "
                f"got {got(value)}"
            )
    return v
