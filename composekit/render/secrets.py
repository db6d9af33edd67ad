"""How secrets reach the app's processes, in both modes: each secret is a file (the database password, one per
app/secrets variable); a variable that holds a secret (app/secrets, DATABASE_URL, POSTGRES_PASSWORD) is set by
runtime/secret_env.py, which the app's and the migration's command run first (secret_env_command), in the process
environment only, never in `environment:`. Compose mode delivers the files through the `files` volume, mode: swarm
as Swarm secrets under /run/secrets."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ..config.model import Config
from .names import DB_PORT, DB_SERVICE, FILES_DIR

__all__ = [
    "DB_PASSWORD_ENV",
    "DB_SECRET",
    "SECRETS_VERSION_ENV",
    "SECRETS_VERSION_LABEL",
    "SECRET_ENV",
    "SECRET_ENV_PATH",
    "app_secret_env",
    "app_secret_name",
    "database_url_template",
    "env_secret_variables",
    "needs_secret_env",
    "secret_env_command",
    "secret_names",
    "secrets_version",
]

DB_SECRET = "db_password"

# The database password reaches the Compose process in this variable only.
DB_PASSWORD_ENV = "COMPOSEKIT_DB_PASSWORD"

# runtime/secret_env.py, where the app and the migration find it (the files volume; a Swarm config in mode: swarm).
SECRET_ENV = "secret_env.py"

SECRET_ENV_PATH = f"{FILES_DIR}/{SECRET_ENV}"

# The one deliberate variable of compose.yaml (set after escaping: render/compose.py compose_variables): a slow hash
# of the values runtime/secret_env.py puts into the app's environment, in a label of the app, so that a changed value
# changes the app's config hash and `up` switches to a new container (which reads the new files) instead of keeping
# the old one.
SECRETS_VERSION_ENV = "COMPOSEKIT_SECRETS_VERSION"

SECRETS_VERSION_LABEL = "composekit.secrets-version"

SECRETS_KDF_ITERATIONS = 200_000


def app_secret_name(variable: str) -> str:
    """The secret (and its file's name) that carries app/secrets/<variable>."""
    return f"env_{variable}"


def app_secret_env(variable: str) -> str:
    """The variable of the Compose process that composekit fills from app/secrets/<variable>'s file."""
    return f"COMPOSEKIT_SECRET_{variable}"


def secret_names(config: Config) -> list[str]:
    """The secrets the app and the migration read: the database password, then app/secrets."""
    names = [DB_SECRET] if config.database is not None else []
    return names + [app_secret_name(name) for name in sorted(config.app.secrets)]


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
