"""The variables of mode: swarm's stack files and their values at deploy time: `docker stack deploy` substitutes them
from its environment, which the deploying side fills from deploy_variables() (the release, the replicas, the version
of each secret), and the stack files' `secrets:` section whose names carry those versions. Pure but for reading the
secrets' files (secret_version)."""

from __future__ import annotations

import hashlib
from typing import Any

from ..config.model import Config
from ..config.project import Project
from ..errors import ConfigError
from .secrets import DB_SECRET, app_secret_name

__all__ = [
    "DB_SECRET_VARIABLE",
    "DB_SECRET_VERSION_LENGTH",
    "RELEASE_VARIABLE",
    "REPLICAS_VARIABLE",
    "TRAEFIK_REPLICAS_VARIABLE",
    "db_secret_version",
    "deploy_variables",
    "secret_files",
    "secret_version",
    "secret_version_variable",
    "secrets_section",
    "swarm_image",
]

RELEASE_VARIABLE = "COMPOSEKIT_RELEASE"
REPLICAS_VARIABLE = "COMPOSEKIT_APP_REPLICAS"
# 0 at a first deploy only: Traefik starts once the socket proxy it reads the services through runs (Swarm has no
# depends_on; started together, Traefik logs errors until the proxy's name resolves).
TRAEFIK_REPLICAS_VARIABLE = "COMPOSEKIT_TRAEFIK_REPLICAS"
DB_SECRET_VARIABLE = "COMPOSEKIT_DB_SECRET_VERSION"

# deploy_variables' hash of the database password: PBKDF2-HMAC-SHA256, salted with the stack name.
DB_SECRET_KDF_ITERATIONS = 200_000
DB_SECRET_VERSION_LENGTH = 12
# The longest name of a Swarm secret or config (swarmkit refuses longer ones at `docker stack deploy`).
SWARM_NAME_MAX = 64


def swarm_image(config: Config, release: str) -> str:
    """The release image as the cluster's nodes know it: <name>-app:<release>, under registry/ when one is set."""
    repository = f"{config.name}-app" if config.registry is None else f"{config.registry}/{config.name}-app"
    return f"{repository}:{release}"


def secret_files(project: Project) -> dict[str, tuple[str, str]]:
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


def db_secret_version(project: Project) -> str:
    """A version of the database password for its secret's name: PBKDF2-HMAC-SHA256 of the password file's bytes,
    salted with the stack name, DB_SECRET_KDF_ITERATIONS rounds, the first DB_SECRET_VERSION_LENGTH hex digits.
    It changes when the password changes; slow on purpose, as the name is visible to whoever lists secrets."""
    assert project.config.database is not None
    return secret_version(project, DB_SECRET)


def secret_version(project: Project, secret: str) -> str:
    """db_secret_version's hash, of any secret of the stack (the database password, one of app/secrets)."""
    key, value = secret_files(project)[secret]
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
    for secret in secret_files(project):
        variables[secret_version_variable(secret)] = secret_version(project, secret)
    return variables


def secrets_section(project: Project) -> dict[str, Any]:
    """The database password and app/secrets: read by `docker stack deploy` from their files; each name carries a
    version from deploy_variables, so a new value is a new secret (Swarm secrets are immutable)."""
    config = project.config
    problems = []
    for secret, (key, _) in secret_files(project).items():
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
        for name, (_, path) in secret_files(project).items()
    }
