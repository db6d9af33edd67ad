"""The typed model of ``composekit.yaml``: sections, defaults, constraints and the checks across keys.

config/load.py reads files into it and words every problem as ``FILE: key/path: expected ..., got ...``.
"""

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

from .environment import DATABASE_VARIABLE_SETS, check_environment, check_secrets
from .fields import (
    _CONSTRAINT_RE,
    _DOMAIN_RE,
    _MODULE_RE,
    _NAME_RE,
    _NODE_NAME_RE,
    _REGISTRY_RE,
    _URL_SCHEME_RE,
    _VOLUME_NAME_RE,
    CONTAINER_PATH_CHARS,
    CONTAINER_PATH_RE,
    URL_PATH_EXPECTED,
    URL_PATH_RE,
    Days,
    Expected,
    Flag,
    PgIdentifier,
    Port,
    PositiveInt,
    PositiveNumber,
    got,
    parse_memory,
)
from .redact import redact
from .ssh_url import HOST_FORMS, host_problem

__all__ = [
    "CONFIG_FILENAME",
    "DATABASE_VOLUME",
    "OVERRIDE_FILENAME",
    "Acme",
    "App",
    "Config",
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
    "database_variables",
]

CONFIG_FILENAME = "composekit.yaml"
OVERRIDE_FILENAME = "composekit.override.yaml"

DEFAULT_PYTHON_IMAGE = "python:3.13-slim"
DEFAULT_TRAEFIK_IMAGE = "traefik:v3.7"
DEFAULT_POSTGRES_IMAGE = "postgres:17"
DATABASE_VOLUME = "db-data"
# A fork bomb stops here; 64 gunicorn workers with their thread pools stay well below it.
DEFAULT_PIDS_LIMIT = 4096
MIN_PIDS_LIMIT = 16
MAX_PIDS_LIMIT = 4194304  # the kernel's own ceiling (pid_max on 64-bit)
DEFAULT_LOG_MAX_SIZE = 10 * 1024**2
DEFAULT_LOG_MAX_FILE = 3
LINUX_CAPABILITIES = frozenset(
    # one word per name reads better than 41 quoted items
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE DAC_READ_SEARCH "  # noqa: SIM905
    "FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN "
    "NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYSLOG SYS_ADMIN SYS_BOOT "
    "SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG "
    "WAKE_ALARM".split()
)

SWARM_ONLY = "applies to mode: swarm only; set `mode: swarm` or remove the key"
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


class App(_Model):
    path: str = "."
    # Where the app's code runs, inside app/path: a workspace member (backend/) when the lock file is at the root.
    workdir: str = "."
    dockerfile: str | None = None
    module: Annotated[
        str,
        Strict(),
        Field(pattern=_MODULE_RE.pattern, examples=["app.main:app"]),
        Expected('"package.module:attribute", such as "app.main:app"'),
    ]
    port: Port = 8000
    health_path: str = "/health"
    workers: int | Literal["auto"] = "auto"
    workers_per_core: PositiveNumber = 1.0
    max_workers: PositiveInt | None = None
    worker_memory: int = 256 * 1024**2
    cpus: PositiveNumber | None = None
    memory: int | None = None
    env_file: str | None = None
    environment: dict[str, str] = {}
    # Variable -> file on the deploying machine (relative to composekit.yaml); in the app's and the migration's
    # process environment only (runtime/secret_env.py), never in a rendered file or the container's configuration.
    secrets: dict[str, str] = {}
    volumes: dict[str, str] = {}
    # Confinement of the app and the migration (see README "Security defaults"); each one relaxable.
    read_only: Flag = True
    pids_limit: Annotated[
        int,
        Strict(),
        Field(ge=MIN_PIDS_LIMIT, le=MAX_PIDS_LIMIT),
        Expected(f"an integer from {MIN_PIDS_LIMIT} to {MAX_PIDS_LIMIT}"),
    ] = DEFAULT_PIDS_LIMIT
    cap_add: tuple[str, ...] = ()
    # mode: swarm only (Config._swarm_only refuses them in compose mode): tasks of the app service, and where
    # Swarm may place them.
    replicas: PositiveInt = 2
    placement: tuple[
        Annotated[
            str,
            Strict(),
            Field(pattern=_CONSTRAINT_RE.pattern, examples=["node.labels.zone == a"]),
            Expected('a Swarm placement constraint such as "node.labels.zone == a" or "node.role != manager"'),
        ],
        ...,
    ] = ()

    @field_validator("workdir", mode="before")
    @classmethod
    def _workdir(cls, v: Any) -> Any:
        parts = v.split("/") if isinstance(v, str) else []
        if (
            not isinstance(v, str)
            or not v
            or v.startswith("/")
            or "\\" in v
            or any(p in ("..", "") for p in parts)
            or (v != "." and "." in parts)
            or not v.isprintable()
        ):
            raise ValueError(
                f'expected a relative directory inside app/path such as "backend" (no "..", no trailing "/"), '
                f"got {got(v)}"
            )
        return v

    @field_validator("health_path", mode="before")
    @classmethod
    def _health_path(cls, v: Any) -> Any:
        if not isinstance(v, str) or not URL_PATH_RE.match(v):
            raise ValueError(f"expected {URL_PATH_EXPECTED}, got {got(v)}")
        return v

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return v
        raise ValueError(f'expected "auto" or a positive integer, got {got(v)}')

    @field_validator("memory", "worker_memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        return None if v is None else parse_memory(v)

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, v: Any) -> Any:
        return check_environment(v)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, v: Any) -> Any:
        return check_secrets(v)

    @model_validator(mode="after")
    def _secrets_not_environment(self) -> App:
        both = sorted(set(self.secrets) & set(self.environment))
        if both:
            raise ValueError(
                f"secrets: {both[0]} is also set in app/environment; keep one of the two (a secret belongs in "
                "app/secrets only)"
            )
        return self

    @field_validator("volumes", mode="before")
    @classmethod
    def _volumes(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of volume name: absolute container path, got {got(v)}")
        for name, target in v.items():
            if not isinstance(name, str) or not _VOLUME_NAME_RE.match(name) or name in ("acme", "routes", "files"):
                raise ValueError(
                    'expected volume names of letters, digits, "_", "-", "." (not "acme", "routes" or "files"), '
                    f"got {got(name)}"
                )
            if (
                not isinstance(target, str)
                or not CONTAINER_PATH_RE.match(target)
                or any(part in (".", "..") for part in target.split("/"))
            ):
                raise ValueError(
                    f"{name}: expected an absolute path inside the container, of {CONTAINER_PATH_CHARS}, "
                    f"got {got(target)}"
                )
        return v

    @field_validator("cap_add", mode="before")
    @classmethod
    def _cap_add(cls, v: Any) -> Any:
        if not isinstance(v, list):
            raise ValueError(f"expected a list of Linux capability names such as [CHOWN], got {got(v)}")
        names: set[str] = set()
        for item in v:
            name = item.upper().removeprefix("CAP_") if isinstance(item, str) else None
            if name not in LINUX_CAPABILITIES:
                raise ValueError(f"expected Linux capability names such as CHOWN or NET_BIND_SERVICE, got {got(item)}")
            names.add(name)
        return tuple(sorted(names))


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
                argv = shlex.split(v)  # as render/compose.py and engine/migration_state.py split it
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

    @field_validator("python", "traefik", "postgres", mode="before")
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
        return App._health_path(v)


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


class Config(_Model):
    name: Annotated[
        str,
        Strict(),
        Field(pattern=_NAME_RE.pattern),
        Expected('lowercase letters, digits, "-" and "_", starting with a letter or digit'),
    ]
    domain: Annotated[
        str,
        Strict(),
        Field(pattern=_DOMAIN_RE.pattern, examples=["shop.example.com"]),
        Expected('a fully qualified lowercase domain name such as "shop.example.com"'),
    ]
    acme: Acme = Acme()
    app: App
    migrate: Migrate = Migrate()
    database: Database | None = None
    images: Images = Images()
    ports: Ports = Ports()
    smoke: Smoke = Smoke()
    logging: Logging = Logging()
    network: Network = Network()
    releases: Releases = Releases()
    # The Docker engine to deploy to (--host overrides it); None: DOCKER_HOST, else the current Docker context.
    host: str | None = None
    # compose: one engine, `docker compose`; swarm: a Swarm cluster, `docker stack deploy` (render/swarm.py).
    mode: Literal["compose", "swarm"] = "compose"
    swarm: Swarm = Swarm()
    # mode: swarm: push the release image to <registry>/<name>-app instead of shipping it to each node.
    registry: (
        Annotated[
            str,
            Strict(),
            Field(pattern=_REGISTRY_RE.pattern, examples=["registry.example.com/team"]),
            Expected('an image repository prefix such as "registry.example.com/team" (lowercase, no tag)'),
        ]
        | None
    ) = None

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, v: Any) -> Any:
        if v is None:
            return v
        problem = host_problem(v) if isinstance(v, str) else f"expected {HOST_FORMS}"
        if problem is not None:
            raise ValueError(f"{problem}, got {got(v)}")
        return v

    @model_validator(mode="after")
    def _swarm_only(self) -> Config:
        if self.mode == "swarm":
            return self
        keys = [f"app/{key}" for key in ("replicas", "placement") if key in self.app.model_fields_set]
        keys += ["swarm"] * ("swarm" in self.model_fields_set) + ["registry"] * ("registry" in self.model_fields_set)
        if keys:  # the first one; the next shows once it is fixed, as for the other checks across sections
            raise ValueError(f"{keys[0]}: {SWARM_ONLY}")
        return self

    @model_validator(mode="after")
    def _database_variables(self) -> Config:
        own = database_variables(self.database)
        for key in ("environment", "secrets"):
            taken = [k for k in getattr(self.app, key) if k in own]
            if taken:
                raise ValueError(
                    f"app/{key}: {taken[0]} is composekit's own variable when database is set: {own[taken[0]]}"
                )
        return self

    @model_validator(mode="after")
    def _database_volume(self) -> Config:
        if self.database is not None and DATABASE_VOLUME in self.app.volumes:
            raise ValueError(
                f'app/volumes: "{DATABASE_VOLUME}" is the database\'s volume; give your volume another name'
            )
        return self

    def redacted(self) -> dict[str, Any]:
        """The merged config as plain data, every value that could be a credential shown as ``<redacted>``.

        Validation already refuses secrets in app/environment; this is the second line, for any string that
        slips through (a URL with userinfo anywhere, say). The database password and app/secrets are file
        paths here, and neither they nor env files are read for this.
        """
        data = self.model_dump(mode="json")
        redacted: dict[str, Any] = redact(data)
        # app/secrets: the paths of the files, keyed by the variables they fill (SECRET_KEY would redact by name):
        # shown, unless a path itself looks like a credential.
        redacted["app"]["secrets"] = {k: redact(v) for k, v in data["app"]["secrets"].items()}
        return redacted


def database_variables(database: Database | None) -> dict[str, str]:
    """The variables composekit sets in the app and the migration for ``database`` (database/variables), each with
    what to set instead; {} without a database."""
    return {} if database is None else DATABASE_VARIABLE_SETS[database.variables]
