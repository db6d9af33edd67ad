"""The typed model of ``composekit.yaml``, and its loading and validation.

Every problem in a file is reported at once, each as ``FILE: key/path: expected ..., got ...``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "OVERRIDE_FILENAME",
    "Acme",
    "App",
    "Config",
    "Database",
    "Images",
    "Migrate",
    "Ports",
    "SmokeCheck",
    "Smoke",
    "load_config",
    "parse_config",
    "parse_memory",
]

CONFIG_FILENAME = "composekit.yaml"
OVERRIDE_FILENAME = "composekit.override.yaml"

DEFAULT_PYTHON_IMAGE = "python:3.13-slim"
DEFAULT_TRAEFIK_IMAGE = "traefik:v3.7"
DEFAULT_POSTGRES_IMAGE = "postgres:17"
DATABASE_VOLUME = "db-data"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_MODULE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?$")
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY_RE = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL)", re.IGNORECASE)
_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_PG_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CA_ALIASES = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}


def _got(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def parse_memory(value: Any) -> int:
    """``"512M"``, ``"1g"``, ``"256MiB"`` or a byte count -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f'expected a size such as "512M" or "1G", got {_got(value)}')
    if isinstance(value, int) and value > 0:
        return value
    match = _MEMORY_RE.match(str(value).strip()) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f'expected a size such as "512M" or "1G", got {_got(value)}')
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Acme(_Model):
    email: str | None = None
    ca_server: str = "production"
    ca_certificates: tuple[str, ...] = ()
    challenge: Literal["http", "tls"] = "http"

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, v: Any) -> Any:
        if v is not None and not (isinstance(v, str) and re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v)):
            raise ValueError(f"expected an email address, got {_got(v)}")
        return v

    @field_validator("ca_server", mode="before")
    @classmethod
    def _ca_server(cls, v: Any) -> Any:
        if not isinstance(v, str) or not (v in _CA_ALIASES or v.startswith("https://")):
            raise ValueError(f'expected "production", "staging" or an https:// ACME directory URL, got {_got(v)}')
        return v

    @property
    def directory_url(self) -> str:
        return _CA_ALIASES.get(self.ca_server, self.ca_server)


class App(_Model):
    path: str = "."
    dockerfile: str | None = None
    module: str
    port: int = 8000
    health_path: str = "/health"
    workers: int | Literal["auto"] = "auto"
    workers_per_core: float = 1.0
    max_workers: int | None = None
    worker_memory: int = 256 * 1024**2
    cpus: float | None = None
    memory: int | None = None
    env_file: str | None = None
    environment: dict[str, str] = {}
    volumes: dict[str, str] = {}

    @field_validator("module", mode="before")
    @classmethod
    def _module(cls, v: Any) -> Any:
        if not isinstance(v, str) or not _MODULE_RE.match(v):
            raise ValueError(f'expected "package.module:attribute", such as "app.main:app", got {_got(v)}')
        return v

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
            raise ValueError(f"expected a port number from 1 to 65535, got {_got(v)}")
        return v

    @field_validator("health_path", mode="before")
    @classmethod
    def _health_path(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.startswith("/") or any(c.isspace() for c in v):
            raise ValueError(f'expected a URL path starting with "/", got {_got(v)}')
        return v

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return v
        raise ValueError(f'expected "auto" or a positive integer, got {_got(v)}')

    @field_validator("max_workers", mode="before")
    @classmethod
    def _max_workers(cls, v: Any) -> Any:
        if v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return v
        raise ValueError(f"expected a positive integer, got {_got(v)}")

    @field_validator("workers_per_core", "cpus", mode="before")
    @classmethod
    def _positive_number(cls, v: Any) -> Any:
        if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf):
            return v
        raise ValueError(f"expected a positive number, got {_got(v)}")

    @field_validator("memory", "worker_memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        return None if v is None else parse_memory(v)

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of VARIABLE: value, got {_got(v)}")
        out: dict[str, str] = {}
        for key, value in v.items():
            if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
                raise ValueError(f"expected environment variable names, got {_got(key)}")
            if _SECRET_KEY_RE.search(key):
                raise ValueError(
                    f"{key} looks like a secret; put it in app/env_file so it never lands in the rendered files"
                )
            if isinstance(value, (dict, list)) or value is None:
                raise ValueError(f"{key}: expected a string, number or boolean, got {_got(value)}")
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    @field_validator("volumes", mode="before")
    @classmethod
    def _volumes(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of volume name: absolute container path, got {_got(v)}")
        for name, target in v.items():
            if not isinstance(name, str) or not _VOLUME_NAME_RE.match(name) or name == "acme":
                raise ValueError(f'expected volume names of letters, digits, "_", "-", "." (not "acme"), got {_got(name)}')
            if not isinstance(target, str) or not target.startswith("/") or target == "/":
                raise ValueError(f"{name}: expected an absolute path inside the container, got {_got(target)}")
        return v


class Migrate(_Model):
    command: str | tuple[str, ...] | None = None

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.strip()):
            return v
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return tuple(v)
        raise ValueError(f"expected a command line or a list of arguments, got {_got(v)}")


class Database(_Model):
    """A PostgreSQL service for the app. The password lives in a file, mounted as a Compose secret."""

    engine: Literal["postgres"] = "postgres"
    name: str = "app"
    user: str = "app"
    password_file: str

    @field_validator("name", "user", mode="before")
    @classmethod
    def _identifier(cls, v: Any) -> Any:
        if not isinstance(v, str) or not _PG_IDENT_RE.match(v):
            raise ValueError(f'expected lowercase letters, digits and "_", starting with a letter or "_", got {_got(v)}')
        return v

    @field_validator("password_file", mode="before")
    @classmethod
    def _password_file(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"expected the path of a file that holds the password, such as secrets/db_password, got {_got(v)}")
        return v


class Images(_Model):
    python: str = DEFAULT_PYTHON_IMAGE
    traefik: str = DEFAULT_TRAEFIK_IMAGE
    postgres: str = DEFAULT_POSTGRES_IMAGE

    @field_validator("python", "traefik", "postgres", mode="before")
    @classmethod
    def _image(cls, v: Any) -> Any:
        if not isinstance(v, str) or not re.match(r"^[\w][\w./:@-]*$", v, re.ASCII):
            raise ValueError(f'expected an image reference such as "python:3.13-slim", got {_got(v)}')
        return v


class Ports(_Model):
    http: int = 80
    https: int = 443

    @field_validator("http", "https", mode="before")
    @classmethod
    def _port(cls, v: Any) -> Any:
        return App._port(v)

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if self.http == self.https:
            raise ValueError(f"http and https must be different ports, got {self.http} for both")
        return self


class SmokeCheck(_Model):
    path: str
    status: int = 200
    contains: str | None = None
    json_key: str | None = None

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        return App._health_path(v)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599:
            return v
        raise ValueError(f"expected an HTTP status code from 100 to 599, got {_got(v)}")


class Smoke(_Model):
    latency_ms: int = 2000
    cert_warn_days: int = 21
    cert_fail_days: int = 7
    checks: tuple[SmokeCheck, ...] = ()
    # Where `smoke` (and `up`'s smoke) connects instead of resolving the domain, and a CA file to trust
    # instead of the system's: for a server checked before DNS points at it, or a private or test CA.
    resolve: str | None = None
    ca_file: str | None = None

    @field_validator("latency_ms", mode="before")
    @classmethod
    def _latency(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
        raise ValueError(f"expected a positive number of milliseconds, got {_got(v)}")

    @field_validator("cert_warn_days", "cert_fail_days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
        raise ValueError(f"expected a number of days (0 or more), got {_got(v)}")

    @field_validator("resolve", mode="before")
    @classmethod
    def _resolve(cls, v: Any) -> Any:
        try:
            return None if v is None else str(ipaddress.ip_address(str(v).strip("[]")))
        except ValueError:
            raise ValueError(f'expected an IP address such as "203.0.113.7", got {_got(v)}') from None

    @model_validator(mode="after")
    def _thresholds(self) -> Smoke:
        if self.cert_fail_days > self.cert_warn_days:
            raise ValueError(
                f"cert_fail_days ({self.cert_fail_days}) must not exceed cert_warn_days ({self.cert_warn_days})"
            )
        return self


class Config(_Model):
    name: str
    domain: str
    acme: Acme = Acme()
    app: App
    migrate: Migrate = Migrate()
    database: Database | None = None
    images: Images = Images()
    ports: Ports = Ports()
    smoke: Smoke = Smoke()

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if not isinstance(v, str) or not _NAME_RE.match(v):
            raise ValueError(f'expected lowercase letters, digits, "-" and "_", starting with a letter or digit, got {_got(v)}')
        return v

    @field_validator("domain", mode="before")
    @classmethod
    def _domain(cls, v: Any) -> Any:
        if not isinstance(v, str) or not _DOMAIN_RE.match(v):
            raise ValueError(f'expected a fully qualified lowercase domain name such as "shop.example.com", got {_got(v)}')
        return v

    @model_validator(mode="after")
    def _database_volume(self) -> Config:
        if self.database is not None and DATABASE_VOLUME in self.app.volumes:
            raise ValueError(
                f'app/volumes: "{DATABASE_VOLUME}" is the database\'s volume; give your volume another name'
            )
        return self

    def redacted(self) -> dict[str, Any]:
        """The merged config as plain data. Secrets never live here (they stay in env files), so only paths show."""
        return self.model_dump(mode="json")


_TYPE_MESSAGES = {
    "missing": "required key is missing",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def _describe(error: Any, data: Any) -> str:
    loc = [str(part) for part in error["loc"] if not str(part).startswith(("function-", "literal[", "tuple["))]
    kind = error["type"]
    path = "/".join(loc) if loc else "(top level)"
    if not loc and kind == "value_error":  # a check across sections names its own key path
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"{path}: unknown key{_known_keys(data, error['loc'])}"
    if kind == "value_error":
        msg = error["msg"].removeprefix("Value error, ")
    elif kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", '"')
        msg = f"expected {expected}, got {_got(error['input'])}"
    elif kind in _TYPE_MESSAGES:
        msg = _TYPE_MESSAGES[kind]
        if kind != "missing":
            msg += f", got {_got(error['input'])}"
    else:
        msg = f"{error['msg']}, got {_got(error['input'])}"
    return f"{path}: {msg}"


def _known_keys(data: Any, loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None:
            return ""
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        if isinstance(part, int):
            continue
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is None and annotation is not None:
            args = getattr(annotation, "__args__", ())
            model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return f" (expected one of: {', '.join(model.model_fields)})" if model else ""


def parse_config(data: Any, source: str = CONFIG_FILENAME) -> Config:
    """Validate already-parsed YAML; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: expected a mapping of keys at the top level, got {_got(data)}"])
    with_nul = _nul_paths(data)
    problems = [f"{source}: {'/'.join(p)}: expected text without NUL characters, got {_got(v)}" for p, v in with_nul]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # A key already reported for its NUL character is not reported a second time.
        problems += [
            f"{source}: {_describe(err, data)}" for err in exc.errors()
            if not any(tuple(map(str, err["loc"])) == p[: len(err["loc"])] for p, _ in with_nul)
        ]
    if problems:
        raise ConfigError(problems)
    return config


def _nul_paths(data: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Keys and values holding a NUL character: no command, environment variable or path can carry one."""
    found: list[tuple[tuple[str, ...], Any]] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if isinstance(key, str) and "\0" in key:
            found.append(((*path, key), key))
        elif isinstance(value, str) and "\0" in value:
            found.append(((*path, str(key)), value))
        else:
            found += _nul_paths(value, (*path, str(key)))
    return found


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise ConfigError([f"{path}: expected UTF-8 text, got byte 0x{byte:02x} at offset {exc.start}"]) from None
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: not found; run `composekit init` in your app's repository to create one, or pass --config FILE"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    try:
        return yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.reader.ReaderError):
            line_start = text.rfind("\n", 0, exc.position)
            where = f" at line {text.count(chr(10), 0, exc.position) + 1}, column {exc.position - line_start}"
            problem = f"character U+{exc.character:04X} is not allowed ({exc.reason})"
        raise ConfigError([f"{path}: invalid YAML{where}: {' '.join(problem.split())}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: invalid YAML: nested too deeply to read"]) from None
    except ValueError as exc:  # a value YAML cannot build: a date such as 2024-13-01, an integer of 5000 digits
        raise ConfigError([f"{path}: invalid YAML: {str(exc).splitlines()[0]}"]) from None


def _deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        merged = dict(base)
        for key, value in top.items():
            merged[key] = _deep_merge(base.get(key), value) if key in base else value
        return merged
    return top


def load_config(*paths: Path) -> Config:
    """Load one config file, or several merged in order (later files override keys of earlier ones)."""
    if not paths:
        paths = (Path(CONFIG_FILENAME),)
    data: Any = None
    for path in paths:
        doc = _read_yaml(path)
        if not isinstance(doc, dict):
            raise ConfigError([f"{path}: expected a mapping of keys at the top level, got {_got(doc)}"])
        data = doc if data is None else _deep_merge(data, doc)
    return parse_config(data, source=" + ".join(p.name if len(paths) > 1 else str(p) for p in paths))
