"""The app's companions: processes/ (more commands of the app's image: queue workers), schedules/ (commands of the
app's image on a cron schedule) and accessories/ (other images beside the app: Redis first). Their names, commands and
the checks inside each; config/model.py puts them in Config and render/companions.py renders them."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import Field, Strict, field_validator, model_validator

from .environment import check_environment
from .fields import (
    Expected,
    PositiveInt,
    PositiveNumber,
    check_volumes,
    got,
    parse_memory,
)
from .sections import _Model

__all__ = [
    "BACKUP_DB_SERVICE",
    "BACKUP_SERVICE",
    "COMPANION_NAME_RE",
    "DEFAULT_STOP_GRACE",
    "DEFAULT_TIMEOUT",
    "RESERVED_NAMES",
    "SCHEDULER_SERVICE",
    "Accessory",
    "Process",
    "Schedule",
    "check_accessories",
    "check_cron",
    "check_processes",
    "check_schedules",
    "command_argv",
]

# A service name that is also a DNS label: the other containers reach an accessory by it.
COMPANION_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$(?!\n)")
COMPANION_NAME_EXPECTED = 'lowercase letters, digits and "-" (a DNS label, at most 63 characters)'
# composekit's own services, in both modes (render/compose.py, render/swarm.py).
# The one service that runs schedules/ (render/companions.py).
SCHEDULER_SERVICE = "scheduler"
# The services of backups/schedule (render/backup.py).
BACKUP_SERVICE = "backup"
BACKUP_DB_SERVICE = "backup-db"
RESERVED_NAMES = (
    "app",
    "migrate",
    "db",
    "traefik",
    "routes",
    "files",
    "socket-proxy",
    SCHEDULER_SERVICE,
    BACKUP_SERVICE,
    BACKUP_DB_SERVICE,
)
DEFAULT_STOP_GRACE = 30
MAX_STOP_GRACE = 3600

# Where an accessory's secret goes instead of environment (the official images read *_FILE variables).
_SECRET_FILE_FIX = (
    "put the value in a file, list it under secrets and point the image at /run/secrets/<name> (such as "
    "POSTGRES_PASSWORD_FILE)"
)


def _command(v: Any, *, optional: bool) -> Any:
    """A command line (split as sh splits it: its quotes closed) or a non-empty list of arguments."""
    if isinstance(v, str) and v.strip():
        try:
            argv = shlex.split(v)  # as render/companions.py splits it
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise ValueError(
                f"expected a command line whose quotes are closed ({str(exc).lower()}), or a list of "
                f"arguments, got {got(v)}"
            ) from None
        if argv and argv[0]:
            return v
    if v is None and optional:
        return v
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v) and v[0]:
        return tuple(v)
    raise ValueError(f"expected a command line or a list of arguments, got {got(v)}")


def command_argv(command: str | tuple[str, ...]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


class Process(_Model):
    """A command of the app's image run beside it (a queue worker): its environment, secrets, volumes and
    confinement are the app's; no port, no front network."""

    command: str | tuple[str, ...]
    replicas: PositiveInt = 1
    cpus: PositiveNumber | None = None
    memory: int | None = None
    # Exits 0 while the process is healthy (run inside its container); `up` waits for it before the web switch.
    health_command: str | tuple[str, ...] | None = None
    # Seconds between SIGTERM and SIGKILL when a release replaces it: time to finish the job it holds.
    stop_grace: Annotated[
        int,
        Strict(),
        Field(ge=1, le=MAX_STOP_GRACE),
        Expected(f"a number of seconds from 1 to {MAX_STOP_GRACE}"),
    ] = DEFAULT_STOP_GRACE

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        return {"command": v} if isinstance(v, (str, list)) else v

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        return _command(v, optional=False)

    @field_validator("health_command", mode="before")
    @classmethod
    def _health_command(cls, v: Any) -> Any:
        return _command(v, optional=True)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        return None if v is None else parse_memory(v)


DEFAULT_TIMEOUT = 600
MAX_TIMEOUT = 86400
CRON_EXPECTED = (
    'a cron expression of 5 fields (minute hour day-of-month month day-of-week, such as "*/5 * * * *"; times in UTC)'
)


def check_cron(v: Any) -> Any:
    """A cron expression of five fields, checked by the library that runs it (cronsim, runtime/scheduler.py)."""
    if not isinstance(v, str) or len(v.split()) != 5:
        raise ValueError(f"expected {CRON_EXPECTED}, got {got(v)}")
    try:
        CronSim(v, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"expected {CRON_EXPECTED}, got {got(v)} ({str(exc).rstrip('.').lower()})") from None
    return v


class Schedule(_Model):
    """A command of the app's image run on a cron schedule by the stack's one scheduler (render/companions.py,
    runtime/scheduler.py): the app's environment, secrets, volumes and confinement; no port, no front network."""

    cron: str
    command: str | tuple[str, ...]
    # Seconds a run may take; then it is killed (SIGTERM, SIGKILL 10 s later) and recorded as timed out.
    timeout: Annotated[
        int,
        Strict(),
        Field(ge=1, le=MAX_TIMEOUT),
        Expected(f"a number of seconds from 1 to {MAX_TIMEOUT}"),
    ] = DEFAULT_TIMEOUT

    @field_validator("cron", mode="before")
    @classmethod
    def _cron(cls, v: Any) -> Any:
        return check_cron(v)

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        return _command(v, optional=False)


def _names(v: Any, what: str) -> Any:
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping of {what} name: its settings, got {got(v)}")
    for name in v:
        if not isinstance(name, str) or not COMPANION_NAME_RE.match(name):
            raise ValueError(f"expected {what} names of {COMPANION_NAME_EXPECTED}, got {got(name)}")
        if name in RESERVED_NAMES:
            raise ValueError(
                f'{name}: "{name}" is one of composekit\'s own services ({", ".join(RESERVED_NAMES)}); '
                f"give the {what} another name"
            )
    return v


def check_processes(v: Any) -> Any:
    """processes/: names (DNS labels, not composekit's own services); a bare string is the command."""
    return _names(v, "process")


def check_schedules(v: Any, processes: Any) -> Any:
    """schedules/: names as processes', none of them also a process's."""
    _names(v, "schedule")
    clash = sorted(set(v) & set(processes or {}))
    if clash:
        raise ValueError(f"{clash[0]}: is also the name of a process; give the schedule another name")
    return v


def check_accessories(v: Any, processes: Any) -> Any:
    """accessories/: names as processes', none of them also a process's."""
    _names(v, "accessory")
    clash = sorted(set(v) & set(processes or {}))
    if clash:
        raise ValueError(f"{clash[0]}: is also the name of a process; give the accessory another name")
    return v


class Accessory(_Model):
    """Another image beside the app, on an internal network shared with the app and the processes only; never
    recreated by an app deploy, only when its own definition changes.

    kind: redis fills in the image (images/redis), the command, a `data` volume and the healthcheck; the password
    comes from password_file (a Redis ACL file with its SHA-256, mounted as a secret: never the password itself)."""

    kind: Literal["image", "redis"] = "image"
    image: str | None = None
    command: str | tuple[str, ...] | None = None
    volumes: dict[str, str] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    environment: dict[str, str] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    # secret name -> file on the deploying machine; in the container at /run/secrets/<name>.
    secrets: dict[str, str] = {}  # noqa: RUF012 (pydantic copies it; ruff cannot see the imported base)
    # A command line (run by the image's shell, CMD-SHELL) or a list of arguments (CMD) that exits 0 when healthy.
    healthcheck: str | tuple[str, ...] | None = None
    password_file: str | None = None

    @field_validator("image", mode="before")
    @classmethod
    def _image(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not re.match(r"^[\w][\w./:@-]*$(?!\n)", v, re.ASCII)):
            raise ValueError(f'expected an image reference such as "redis:7", got {got(v)}')
        return v

    @field_validator("command", "healthcheck", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        return _command(v, optional=True)

    @field_validator("volumes", mode="before")
    @classmethod
    def _volumes(cls, v: Any) -> Any:
        return check_volumes(v)

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, v: Any) -> Any:
        return check_environment(v, fix=_SECRET_FILE_FIX, own={})

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of secret name: path of the file that holds it, got {got(v)}")
        for key, value in v.items():
            if not isinstance(key, str) or not re.match(r"^[a-z0-9][a-z0-9_-]*$(?!\n)", key):
                raise ValueError(f'expected secret names of lowercase letters, digits, "_" and "-", got {got(key)}')
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"{key}: expected the path of a file that holds the value, such as secrets/{key}, got {got(value)}"
                )
        return v

    @field_validator("password_file", mode="before")
    @classmethod
    def _password_file(cls, v: Any) -> Any:
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ValueError(
                f"expected the path of a file that holds the password, such as secrets/redis_password, got {got(v)}"
            )
        return v

    @model_validator(mode="after")
    def _kind(self) -> Accessory:
        if self.kind == "redis":
            if self.password_file is None:
                raise ValueError(
                    "password_file: required with kind: redis (the file that holds Redis's password, such as "
                    "secrets/redis_password; keep it out of git)"
                )
            taken = [k for k in ("command", "volumes", "healthcheck", "secrets") if k in self.model_fields_set]
            if taken:
                raise ValueError(
                    f"{taken[0]}: kind: redis sets it; remove the key, or drop kind: redis and describe the "
                    "accessory yourself"
                )
            return self
        if self.image is None:
            raise ValueError('image: required (the accessory\'s image, such as "memcached:1.6"), or set kind: redis')
        if self.password_file is not None:
            raise ValueError(
                "password_file: applies to kind: redis only; give other images their password under secrets"
            )
        return self
