"""The config's sections besides app/: acme, migrate, database, images, ports, network, smoke, logging, swarm,
releases; each its defaults, constraints and the checks inside it. Their base, _Model: no unknown keys, frozen,
the re module's patterns. config/model.py assembles them into Config."""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .backup_storage import BackupS3
from .fields import (
    _NODE_NAME_RE,
    _URL_SCHEME_RE,
    Days,
    Expected,
    Flag,
    PgIdentifier,
    Port,
    got,
    parse_memory,
    url_path,
)
from .ssh_url import HOST_FORMS, host_problem

__all__ = [
    "DEFAULT_LOG_MAX_FILE",
    "DEFAULT_LOG_MAX_SIZE",
    "DEFAULT_POSTGRES_IMAGE",
    "DEFAULT_PYTHON_IMAGE",
    "DEFAULT_REDIS_IMAGE",
    "DEFAULT_TRAEFIK_IMAGE",
    "Acme",
    "BackupKeep",
    "Backups",
    "Database",
    "Images",
    "Logging",
    "Migrate",
    "Network",
    "Ports",
    "Releases",
    "Smoke",
    "SmokeCheck",
    "Swarm",
]

DEFAULT_PYTHON_IMAGE = "python:3.13-slim"
DEFAULT_TRAEFIK_IMAGE = "traefik:v3.7"
DEFAULT_POSTGRES_IMAGE = "postgres:17"
DEFAULT_REDIS_IMAGE = "redis:7"
DEFAULT_LOG_MAX_SIZE = 10 * 1024**2
DEFAULT_LOG_MAX_FILE = 3
_CA_ALIASES = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}


class _Model(BaseModel):
    # python-re: the patterns are the ones of the re module (lookahead in domain, Unicode \\w in module).
    model_config = ConfigDict(extra="forbid", frozen=True, regex_engine="python-re")


class Acme(_Model):
    email: str | None = None
    ca_server: str = "production"
    ca_certificates: tuple[str, ...] = ()
    challenge: Literal["http", "tls"] = "http"

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, v: Any) -> Any:
        if v is not None and not (isinstance(v, str) and re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$(?!\n)", v)):
            raise ValueError(f"expected an email address, got {got(v)}")
        return v

    @field_validator("ca_server", mode="before")
    @classmethod
    def _ca_server(cls, v: Any) -> Any:
        if not isinstance(v, str) or not (v in _CA_ALIASES or v.startswith("https://")):
            raise ValueError(f'expected "production", "staging" or an https:// ACME directory URL, got {got(v)}')
        return v

    @property
    def directory_url(self) -> str:
        return _CA_ALIASES.get(self.ca_server, self.ca_server)


class Migrate(_Model):
    command: str | tuple[str, ...] | None = None
    # Prints the database's migration state once the migration ran (recorded with the release, compared by
    # `composekit rollback`); None: `alembic current` when command runs alembic, else the state is unknown.
    state_command: str | tuple[str, ...] | None = None
    # False: a release's code needs the migration state it was deployed at, so rollback refuses to cross a migration.
    backward_compatible: Flag = True

    @field_validator("command", "state_command", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip():
            try:
                argv = shlex.split(v)  # as render/services.py and engine/migration_state.py split it
            except ValueError as exc:  # "No closing quotation", "No escaped character"
                raise ValueError(
                    f"expected a command line whose quotes are closed ({str(exc).lower()}), or a list of "
                    f"arguments, got {got(v)}"
                ) from None
            if argv and argv[0]:
                return v
        if v is None:
            return v
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v) and v[0]:
            return tuple(v)
        raise ValueError(f"expected a command line or a list of arguments, got {got(v)}")

    @field_validator("state_command")
    @classmethod
    def _state_needs_command(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and "command" in info.data and info.data["command"] is None:
            raise ValueError(
                "it runs in a container of the migration's service, and there is none: set migrate/command too, "
                "or remove migrate/state_command"
            )
        return v


class Database(_Model):
    """A PostgreSQL service for the app. The password lives in a file, mounted as a Compose secret."""

    engine: Literal["postgres"] = "postgres"
    name: PgIdentifier = "app"
    user: PgIdentifier = "app"
    password_file: str
    # How the app and the migration reach it: composekit's DATABASE_* (DATABASE_PASSWORD_FILE), DATABASE_URL
    # (password included) or the POSTGRES_* set; the password only ever in the process environment.
    variables: Literal["composekit", "database_url", "postgres"] = "composekit"
    url_scheme: Annotated[
        str,
        Strict(),
        Field(pattern=_URL_SCHEME_RE.pattern, examples=["postgresql+asyncpg"]),
        Expected('"postgresql" or "postgres", optionally with a driver such as "postgresql+asyncpg"'),
    ] = "postgresql"

    @model_validator(mode="after")
    def _scheme_needs_url(self) -> Database:
        if "url_scheme" in self.model_fields_set and self.variables != "database_url":
            raise ValueError(
                "url_scheme: applies to variables: database_url only; set `variables: database_url` or remove the key"
            )
        return self

    @field_validator("password_file", mode="before")
    @classmethod
    def _password_file(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(
                f"expected the path of a file that holds the password, such as secrets/db_password, got {got(v)}"
            )
        return v


class Images(_Model):
    python: str = DEFAULT_PYTHON_IMAGE
    traefik: str = DEFAULT_TRAEFIK_IMAGE
    postgres: str = DEFAULT_POSTGRES_IMAGE
    redis: str = DEFAULT_REDIS_IMAGE  # accessories of kind: redis

    @field_validator("python", "traefik", "postgres", "redis", mode="before")
    @classmethod
    def _image(cls, v: Any) -> Any:
        if not isinstance(v, str) or not re.match(r"^[\w][\w./:@-]*$(?!\n)", v, re.ASCII):
            raise ValueError(f'expected an image reference such as "python:3.13-slim", got {got(v)}')
        return v


class Ports(_Model):
    http: Port = 80
    https: Port = 443

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if self.http == self.https:
            raise ValueError(f"http and https must be different ports, got {self.http} for both")
        return self


_PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class Network(_Model):
    """The front network `web` (Traefik and the app): its IPv4 subnet, so Traefik's address is fixed and the
    app trusts proxy headers from that address only. Default: a /24 derived from the project name."""

    subnet: str | None = None

    @field_validator("subnet", mode="before")
    @classmethod
    def _subnet(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            net = ipaddress.IPv4Network(v, strict=False) if isinstance(v, str) else None
        except ValueError:
            net = None
        if net is None or "/" not in v:
            raise ValueError(f'expected an IPv4 subnet in CIDR form such as "10.213.7.0/24", got {got(v)}')
        if str(net) != v:
            raise ValueError(f'expected the network address of the subnet ("{net}"), got {got(v)}')
        if not 16 <= net.prefixlen <= 28:
            raise ValueError(f"expected a prefix length from /16 to /28, got {got(v)}")
        if not any(net.subnet_of(private) for private in _PRIVATE_RANGES):
            raise ValueError(f"expected a private range (in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), got {got(v)}")
        return v


class SmokeCheck(_Model):
    path: str
    status: Annotated[int, Strict(), Field(ge=100, le=599), Expected("an HTTP status code from 100 to 599")] = 200
    contains: str | None = None
    json_key: str | None = None

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        return url_path(v)


class Smoke(_Model):
    latency_ms: Annotated[int, Strict(), Field(ge=1), Expected("a positive number of milliseconds")] = 2000
    cert_warn_days: Days = 21
    cert_fail_days: Days = 7
    checks: tuple[SmokeCheck, ...] = ()
    # Where `smoke` (and `up`'s smoke) connects instead of resolving the domain, and a CA file to trust
    # instead of the system's: for a server checked before DNS points at it, or a private or test CA.
    resolve: str | None = None
    ca_file: str | None = None

    @field_validator("resolve", mode="before")
    @classmethod
    def _resolve(cls, v: Any) -> Any:
        try:
            return None if v is None else str(ipaddress.ip_address(str(v).strip("[]")))
        except ValueError:
            raise ValueError(f'expected an IP address such as "203.0.113.7", got {got(v)}') from None

    @model_validator(mode="after")
    def _thresholds(self) -> Smoke:
        if self.cert_fail_days > self.cert_warn_days:
            raise ValueError(
                f"cert_fail_days ({self.cert_fail_days}) must not exceed cert_warn_days ({self.cert_warn_days})"
            )
        return self


class Logging(_Model):
    """Log rotation of every service: the engine keeps at most max_file files of max_size each."""

    driver: Literal["json-file", "local"] = "json-file"
    max_size: int = DEFAULT_LOG_MAX_SIZE
    max_file: Annotated[int, Strict(), Field(ge=1, le=100), Expected("an integer from 1 to 100")] = DEFAULT_LOG_MAX_FILE

    @field_validator("max_size", mode="before")
    @classmethod
    def _max_size(cls, v: Any) -> Any:
        try:
            size = parse_memory(v)
        except ValueError:
            size = 0
        if not 1024 <= size <= 1024**3:
            raise ValueError(f'expected a size from 1K to 1G, such as "10m", got {got(v)}')
        return size


class Swarm(_Model):
    """mode: swarm: the engine of each node, through which composekit ships the release image (no registry)."""

    nodes: dict[str, str] = {}

    @field_validator("nodes", mode="before")
    @classmethod
    def _nodes(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of node hostname: Docker engine address, got {got(v)}")
        for node, address in v.items():
            if not isinstance(node, str) or not _NODE_NAME_RE.match(node):
                raise ValueError(f"expected node hostnames such as worker-1, got {got(node)}")
            problem = host_problem(address) if isinstance(address, str) else f"expected {HOST_FORMS}"
            if problem is not None:
                raise ValueError(f"{node}: {problem}, got {got(address)}")
        return v


class Releases(_Model):
    keep: Annotated[int, Strict(), Field(ge=1, le=100), Expected("an integer from 1 to 100")] = 5
    # `up --rollback-on-error` by default (`--no-rollback-on-error` overrides it for one deploy).
    rollback_on_error: Flag = False


class BackupKeep(_Model):
    """backups/keep as a calendar rule (engine/backup_manifest.py retention): the newest verified backup of each of the
    ``daily`` newest UTC days and of each of the ``weekly`` newest ISO weeks that have one."""

    daily: Annotated[int, Strict(), Field(ge=1, le=1000), Expected("an integer from 1 to 1000")] | None = None
    weekly: Annotated[int, Strict(), Field(ge=1, le=1000), Expected("an integer from 1 to 1000")] | None = None

    @model_validator(mode="after")
    def _some(self) -> BackupKeep:
        if self.daily is None and self.weekly is None:
            raise ValueError("expected daily and/or weekly (such as {daily: 7, weekly: 4}), or a number of backups")
        return self


class Backups(_Model):
    """`composekit backup` (docs/backups.md). Setting the section, even empty (`backups: {}`), says the stack is
    meant to have backups: `smoke` then warns when the last verified backup is older than warn_hours and fails past
    fail_hours or when there is none; `status` shows its age either way. ``schedule``: the stack backs itself up
    (render/backup.py: the `backup` service runs the job, the `backup-db` service the database's side)."""

    warn_hours: Annotated[int, Strict(), Field(ge=1), Expected("a positive number of hours")] = 26
    fail_hours: Annotated[int, Strict(), Field(ge=1), Expected("a positive number of hours")] = 72
    # After a verified backup, which older backups are deleted: everything older than the keep-th newest verified one,
    # or a {daily, weekly} rule; None: none is.
    keep: int | BackupKeep | None = None
    # Every verified backup is also uploaded there, and keep applies to the bucket too (config/backup_storage.py).
    s3: BackupS3 | None = None
    # A cron expression (UTC): when the stack backs itself up; None: only `composekit backup` makes backups.
    schedule: str | None = None
    # Seconds a scheduled backup (dump, archives and verification) may take before it is stopped as failed.
    timeout: Annotated[int, Strict(), Field(ge=60, le=86400), Expected("a number of seconds from 60 to 86400")] = 3600

    @field_validator("keep", mode="before")
    @classmethod
    def _keep(cls, v: Any) -> Any:
        """A number, or {daily, weekly}: checked here so that an error names one form, not each of the union's."""
        if v is None or isinstance(v, BackupKeep):
            return v
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000:
            return v
        if not isinstance(v, dict):
            raise ValueError(f"expected a number of backups from 1 to 1000, or {{daily: N, weekly: N}}, got {got(v)}")
        for key, value in v.items():
            if key not in ("daily", "weekly"):
                raise ValueError(f"{key}: unknown key (expected daily and/or weekly)")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
                raise ValueError(f"{key}: expected an integer from 1 to 1000, got {got(value)}")
        if not v:
            raise ValueError("expected daily and/or weekly (such as {daily: 7, weekly: 4}), or a number of backups")
        return BackupKeep(**v)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> Any:
        from .companions import check_cron  # here: companions imports this module

        return None if v is None else check_cron(v)

    @model_validator(mode="after")
    def _thresholds(self) -> Backups:
        if self.warn_hours > self.fail_hours:
            raise ValueError(f"warn_hours ({self.warn_hours}) must not exceed fail_hours ({self.fail_hours})")
        return self

    def keep_rule(self) -> int | dict[str, int] | None:
        """keep as engine/backup_manifest.py retention takes it (a number, or {"daily": N, "weekly": N})."""
        if isinstance(self.keep, BackupKeep):
            return self.keep.model_dump(exclude_none=True)
        return self.keep
