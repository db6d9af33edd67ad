"""The building blocks of the config's fields: the annotated constrained types and ``Expected`` (what a field
accepts, in words), the patterns, ``got`` (a value as an error shows it), sizes (``parse_memory``)
and ``check_value``. A constraint here feeds validation and the JSON Schema (config/schema.py) alike."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError

__all__ = [
    "CONTAINER_PATH_CHARS",
    "CONTAINER_PATH_RE",
    "URL_PATH_EXPECTED",
    "URL_PATH_RE",
    "Days",
    "Expected",
    "Flag",
    "PgIdentifier",
    "Port",
    "PositiveInt",
    "PositiveNumber",
    "check_value",
    "check_volumes",
    "got",
    "parse_memory",
    "url_path",
]

# Every pattern ends in $(?!\n): Python's $ also matches before a final newline ("shop\n" would pass and reach the
# rendered files); a JSON Schema validator (ECMA-262) reads it as a plain $.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$(?!\n)")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$(?!\n)")
_MODULE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?$(?!\n)")
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$(?!\n)")
# Where a volume is mounted in the container: it lands in Compose's short volume syntax (NAME:PATH, so no ":"), in
# the generated Dockerfile's `RUN mkdir -p` and in `docker run -v`, so it is kept to characters no shell or
# Docker syntax reads specially.
CONTAINER_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.@+-]+)+$(?!\n)")
CONTAINER_PATH_CHARS = 'letters, digits and "_.@+-" between "/", such as "/data"'
# A URL path, and a query after "?", as an HTTP request line carries it: RFC 3986's characters, anything else
# percent-encoded. It lands in Python (the healthcheck), Traefik's labels and the smoke checks' URLs.
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*$(?!\n)")
URL_PATH_EXPECTED = (
    'a URL path starting with "/", of letters, digits and "-._~!$&\'()*+,;=:@/?%" (percent-encode any other '
    'character, such as a space: "%20")'
)
_URL_SCHEME_RE = re.compile(r"^postgres(ql)?(\+[a-z0-9_]+)?$(?!\n)")
_PG_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$(?!\n)")
# A Swarm placement constraint as `docker service create --constraint` takes it: an attribute, == or !=, a value.
_CONSTRAINT_RE = re.compile(
    r"^(node\.(id|hostname|role|platform\.os|platform\.arch)|(node|engine)\.labels\.[A-Za-z0-9_.-]+)"
    r" *(==|!=) *[A-Za-z0-9_.:/-]+$(?!\n)"
)
# An image repository prefix (host[:port][/path]), lowercase as Docker requires; no tag: composekit adds
# /<name>-app:<release>.
_REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$(?!\n)")
_NODE_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$(?!\n)")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@dataclass(frozen=True)
class Expected:
    """What a constrained field accepts, in words. The constraint itself is the field's (Field(ge=..., pattern=...),
    Strict()): pydantic validates it and puts it in the JSON Schema; config/load.py words any error on the field as
    ``key: expected <text>, got <value>``."""

    text: str


Port = Annotated[int, Strict(), Field(ge=1, le=65535), Expected("a port number from 1 to 65535")]
PositiveInt = Annotated[int, Strict(), Field(ge=1), Expected("a positive integer")]
PositiveNumber = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False), Expected("a positive number")]
Flag = Annotated[bool, Strict(), Expected("true or false")]
Days = Annotated[int, Strict(), Field(ge=0), Expected("a number of days (0 or more)")]
PgIdentifier = Annotated[
    str,
    Strict(),
    Field(pattern=_PG_IDENT_RE.pattern),
    Expected('lowercase letters, digits and "_", starting with a letter or "_"'),
]


def got(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def url_path(v: Any) -> Any:
    """app/health_path and smoke/checks' path: a URL path (URL_PATH_RE), else the ValueError the loader words."""
    if not isinstance(v, str) or not URL_PATH_RE.match(v):
        raise ValueError(f"expected {URL_PATH_EXPECTED}, got {got(v)}")
    return v


def parse_memory(value: Any) -> int:
    """``"512M"``, ``"1g"``, ``"256MiB"`` or a byte count -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f'expected a size such as "512M" or "1G", got {got(value)}')
    if isinstance(value, int) and value > 0:
        return value
    match = _MEMORY_RE.match(str(value).strip()) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f'expected a size such as "512M" or "1G", got {got(value)}')
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def check_value(model: type[BaseModel], field: str, value: Any) -> Any:
    """Validate one value of a constrained field as the loader does (`init --domain`, `--module`); a ValueError
    says ``expected <the field's Expected>, got <value>``."""
    info = model.model_fields[field]
    annotation: Any = Annotated[(info.annotation, *info.metadata)]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation, config=ConfigDict(regex_engine="python-re"))
    try:
        return adapter.validate_python(value)
    except ValidationError:
        expected = next(m for m in info.metadata if isinstance(m, Expected))
        raise ValueError(f"expected {expected.text}, got {got(value)}") from None


def check_volumes(v: Any, reserved: tuple[str, ...] = ()) -> Any:
    """A mapping of named volume -> absolute container path (app/volumes, an accessory's volumes); ``reserved``:
    names the stack uses itself."""
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping of volume name: absolute container path, got {got(v)}")
    for name, target in v.items():
        if not isinstance(name, str) or not _VOLUME_NAME_RE.match(name) or name in reserved:
            quoted = [f'"{r}"' for r in reserved]
            listed = ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)
            not_reserved = f" (not {listed})" if reserved else ""
            raise ValueError(f'expected volume names of letters, digits, "_", "-", "."{not_reserved}, got {got(name)}')
        if (
            not isinstance(target, str)
            or not CONTAINER_PATH_RE.match(target)
            or any(part in (".", "..") for part in target.split("/"))
        ):
            raise ValueError(
                f"{name}: expected an absolute path inside the container, of {CONTAINER_PATH_CHARS}, got {got(target)}"
            )
    return v
