"""The names and numbers both modes share: the app's services, where composekit's files are in the app's containers,
the app's timings, the ACME resolver and its CA files. A leaf: render/secrets.py, services.py, compose.py, swarm.py
and traefik.py read them here, so neither renderer imports the other."""

from __future__ import annotations

from ..config.model import Config

__all__ = [
    "ACME_CA_DIR",
    "APP_SERVICE",
    "APP_START_PERIOD",
    "DB_PORT",
    "DB_SERVICE",
    "FILES_DIR",
    "GRACEFUL_TIMEOUT",
    "HEALTH_INTERVAL",
    "MIGRATE_SERVICE",
    "POSTGRES_DATA",
    "RESOLVER",
    "acme_ca_name",
    "app_image",
]

# The app's service (in both modes): Traefik's initial routes reach it by this name.
APP_SERVICE = "app"

# The migration: a one-shot service in compose.yaml, a replicated job of its own file (migrate.yml) in mode: swarm.
MIGRATE_SERVICE = "migrate"

DB_SERVICE = "db"

DB_PORT = 5432

POSTGRES_DATA = "/var/lib/postgresql/data"

# composekit's files in the app's and the migration's containers (gunicorn.conf.py, secret_env.py; in compose mode
# the `files` volume, which also holds the secrets; in mode: swarm the Swarm configs' targets).
FILES_DIR = "/etc/composekit"

# Seconds the app's server gives requests in flight on a graceful stop (gunicorn's graceful_timeout, uvicorn's
# --timeout-graceful-shutdown); the stop grace period is longer.
GRACEFUL_TIMEOUT = 30

HEALTH_INTERVAL = "5s"

# How long the app may take to turn healthy; Swarm's update monitor (render/swarm.py) waits at least this long.
APP_START_PERIOD = 30

# Traefik's certificate resolver, in its static configuration and the app's routers.
RESOLVER = "composekit"

ACME_CA_DIR = "/etc/composekit/acme-ca"


def app_image(config: Config) -> str:
    """The app's image in compose mode (mode: swarm tags each release: render/swarm.py swarm_image)."""
    return f"{config.name}-app:latest"


def acme_ca_name(index: int) -> str:
    """The name (in RenderedStack.configs and the stack files) of the index-th file of acme/ca_certificates."""
    return f"acme-ca-{index}.pem"
