"""Reading ``composekit.yaml``: parse YAML, merge the -c files in order, validate with the model, and turn every
pydantic error into one line ``FILE: key/path: expected ..., got ...`` of a ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .fields import Expected, got
from .model import CONFIG_FILENAME, Config

__all__ = ["load_config", "parse_config", "read_yaml"]


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
    expected = _expected(error["loc"])
    if expected is not None and kind != "missing":
        return f"{path}: expected {expected.text}, got {got(error['input'])}"
    if kind == "value_error":
        msg = error["msg"].removeprefix("Value error, ")
    elif kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", '"')
        msg = f"expected {expected}, got {got(error['input'])}"
    elif kind in _TYPE_MESSAGES:
        msg = _TYPE_MESSAGES[kind]
        if kind != "missing":
            msg += f", got {got(error['input'])}"
    else:
        msg = f"{error['msg']}, got {got(error['input'])}"
    return f"{path}: {msg}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or one in its Optional/tuple/union arguments."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _expected(loc: tuple[Any, ...]) -> Expected | None:
    """The Expected of the field an error's location names (config/fields.py), when it has one."""
    model: type[BaseModel] | None = Config
    metadata: list[Any] = []
    key = False  # the part is a key of a mapping of models (processes/NAME)
    for part in loc:
        if isinstance(part, int) or str(part).startswith(("function-", "literal[", "tuple[")) or key:
            key = False
            continue
        if model is None:
            return None  # a key inside a mapping field (app/environment/NAME): the field's own validator words it
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        metadata = [
            *field.metadata,
            *(m for arg in get_args(field.annotation) for m in getattr(arg, "__metadata__", ())),
        ]
        model = _model_of(field.annotation)
        key = get_origin(field.annotation) is dict and model is not None
    return next((m for m in metadata if isinstance(m, Expected)), None)


def _known_keys(data: Any, loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] | None = Config
    key = False  # the part is a key of a mapping of models (processes/NAME)
    for part in loc[:-1]:
        if model is None:
            return ""
        if key:
            key = False
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        if isinstance(part, int):
            continue
        key = get_origin(annotation) is dict
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is None and annotation is not None:
            args = getattr(annotation, "__args__", ())
            model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    keys = [k for k in model.model_fields if k != "extra_domains"] if model else []  # `domain` given as a list
    return f" (expected one of: {', '.join(keys)})" if model else ""


def parse_config(data: Any, source: str = CONFIG_FILENAME) -> Config:
    """Validate already-parsed YAML; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: expected a mapping of keys at the top level, got {got(data)}"])
    with_nul = _nul_paths(data)
    problems = [f"{source}: {'/'.join(p)}: expected text without NUL characters, got {got(v)}" for p, v in with_nul]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # A key already reported for its NUL character is not reported a second time.
        problems += [
            f"{source}: {_describe(err, data)}"
            for err in exc.errors()
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


def read_yaml(path: Path) -> Any:
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
        doc = read_yaml(path)
        if not isinstance(doc, dict):
            raise ConfigError([f"{path}: expected a mapping of keys at the top level, got {got(doc)}"])
        data = doc if data is None else _deep_merge(data, doc)
    return parse_config(data, source=" + ".join(p.name if len(paths) > 1 else str(p) for p in paths))
