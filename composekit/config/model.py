"""The typed model of ``composekit.yaml``: app/ and Config: the sections assembled (config/sections.py
holds the others), defaults, constraints and the checks across keys (those of the domains, www and edge in
config/domains.py).

config/load.py reads files into it and words every problem as ``FILE: key/path: expected ..., got ...``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from .companions import Accessory, Process, Schedule, check_accessories, check_processes, check_schedules
from .domains import DOMAIN_EXPECTED, check_routing, split_domain_list, www_redirects
from .environment import DATABASE_VARIABLE_SETS, check_environment, check_secrets
from .fields import (
    _CONSTRAINT_RE,
    _DOMAIN_RE,
    _MODULE_RE,
    _NAME_RE,
    _REGISTRY_RE,
    Expected,
    Flag,
    Port,
    PositiveInt,
    PositiveNumber,
    check_volumes,
    got,
    parse_memory,
    url_path,
)
from .redact import redact
from .sections import (
    Acme,
    Backups,
    Database,
    Images,
    Logging,
    Migrate,
    Network,
    Ports,
    Releases,
    Smoke,
    Swarm,
    _Model,
)
from .ssh_url import HOST_FORMS, host_problem

__all__ = [
    "CONFIG_FILENAME",
    "DATABASE_VOLUME",
    "LINUX_CAPABILITIES",
    "MAX_PIDS_LIMIT",
    "MIN_PIDS_LIMIT",
    "OVERRIDE_FILENAME",
    "App",
    "Config",
    "database_variables",
]

CONFIG_FILENAME = "composekit.yaml"
OVERRIDE_FILENAME = "composekit.override.yaml"

DATABASE_VOLUME = "db-data"
# A fork bomb stops here; 64 gunicorn workers with their thread pools stay well below it.
DEFAULT_PIDS_LIMIT = 4096
MIN_PIDS_LIMIT = 16
MAX_PIDS_LIMIT = 4194304  # the kernel's own ceiling (pid_max on 64-bit)
LINUX_CAPABILITIES = frozenset(
    # one word per name reads better than 41 quoted items
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE DAC_READ_SEARCH "  # noqa: SIM905
    "FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN "
    "NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYSLOG SYS_ADMIN SYS_BOOT "
    "SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG "
    "WAKE_ALARM".split()
)

SWARM_ONLY = "applies to mode: swarm only; set `mode: swarm` or remove the key"


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
    environment: dict[str, str] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    # Variable -> file on the deploying machine (relative to the first config file's directory); in the app's and the
    # migration's process environment only (runtime/secret_env.py), never in a rendered file or the container's
    # configuration.
    secrets: dict[str, str] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    volumes: dict[str, str] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    # Confinement of the app and the migration (see docs/security.md); each one relaxable.
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
        return url_path(v)

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
        return check_volumes(v, reserved=("acme", "routes", "files"))

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
        Expected(DOMAIN_EXPECTED),
    ]
    # `domain` given as a list: its first item is `domain`, the others are here (Config._domain_list). Never a key of
    # its own in composekit.yaml.
    extra_domains: SkipJsonSchema[tuple[str, ...]] = ()
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
    # Backups are configured when the section is set (smoke checks their age): docs/backups.md.
    backups: Backups | None = None
    # The app's companions (config/companions.py): more commands of the app's image, other images beside it.
    processes: dict[str, Process] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    accessories: dict[str, Accessory] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    # Commands of the app's image on a cron schedule, run by the stack's one scheduler service.
    schedules: dict[str, Schedule] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
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
    www: Literal["none", "redirect_to_apex", "redirect_to_www"] = "none"
    # own: the stack holds its own Traefik; shared: the engine's one edge Traefik (project composekit-edge) routes
    # this app beside others (render/edge.py, engine/edge.py).
    edge: Literal["own", "shared"] = "own"

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, v: Any) -> Any:
        if v is None:
            return v
        problem = host_problem(v) if isinstance(v, str) else f"expected {HOST_FORMS}"
        if problem is not None:
            raise ValueError(f"{problem}, got {got(v)}")
        return v

    @field_validator("processes", mode="before")
    @classmethod
    def _processes(cls, v: Any) -> Any:
        return check_processes(v)

    @field_validator("accessories", mode="before")
    @classmethod
    def _accessories(cls, v: Any, info: ValidationInfo) -> Any:
        return check_accessories(v, info.data.get("processes"))

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules(cls, v: Any, info: ValidationInfo) -> Any:
        return check_schedules(v, info.data.get("processes"))

    @model_validator(mode="after")
    def _companions_compose_only(self) -> Config:
        if self.mode == "swarm":
            for key in ("processes", "accessories", "schedules"):
                if getattr(self, key):
                    raise ValueError(
                        f"{key}: mode: swarm does not deploy the app's companions yet (processes, accessories and "
                        f"schedules run in mode: compose only); remove the key or use mode: compose "
                        f"(docs/swarm.md#companions)"
                    )
        return self

    @model_validator(mode="after")
    def _accessory_volumes(self) -> Config:
        for name, accessory in sorted(self.accessories.items()):
            for volume in ["data"] if accessory.kind == "redis" else sorted(accessory.volumes):
                if f"{name}-{volume}" in self.app.volumes:  # render/companions.py accessory_volume
                    raise ValueError(
                        f'app/volumes: "{name}-{volume}" is the volume of accessory {name}; give your volume '
                        "another name"
                    )
        return self

    @model_validator(mode="before")
    @classmethod
    def _domain_list(cls, data: Any) -> Any:
        return split_domain_list(data)

    @property
    def domains(self) -> tuple[str, ...]:
        """Every domain the app serves, `domain` first (the one the probes and the URL use)."""
        return (self.domain, *self.extra_domains)

    def www_redirects(self) -> list[tuple[str, str]]:
        """(from, to) for each domain's www counterpart per `www` (a permanent redirect from -> to)."""
        return www_redirects(self.www, self.domains)

    @model_validator(mode="after")
    def _routing(self) -> Config:
        check_routing(self.domains, self.www, self.edge, self.mode)
        return self

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
    def _backups_compose_only(self) -> Config:
        if self.mode == "swarm" and self.backups is not None:
            raise ValueError(
                "backups: applies to mode: compose only (composekit backup refuses mode: swarm); remove the section"
            )
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
        extra = data.pop("extra_domains")
        if extra:
            data["domain"] = [data["domain"], *extra]
        redacted: dict[str, Any] = redact(data)
        # app/secrets: the paths of the files, keyed by the variables they fill (SECRET_KEY would redact by name):
        # shown, unless a path itself looks like a credential.
        redacted["app"]["secrets"] = {k: redact(v) for k, v in data["app"]["secrets"].items()}
        return redacted


def database_variables(database: Database | None) -> dict[str, str]:
    """The variables composekit sets in the app and the migration for ``database`` (database/variables), each with
    what to set instead; {} without a database."""
    return {} if database is None else DATABASE_VARIABLE_SETS[database.variables]
