"""`composekit schema`: the JSON Schema describes what the loader really accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app as cli_app
from composekit.config import Config, parse_config
from composekit.config.fields import Expected, check_value
from composekit.config.model import MAX_PIDS_LIMIT, MIN_PIDS_LIMIT, App
from composekit.config.schema import (
    OVERRIDES,
    SCHEMA_DIALECT,
    _fields,
    config_schema,
    schema_json,
)
from composekit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


def test_every_before_validator_is_described() -> None:
    """A mode="before" validator accepts other types than its annotation: its schema must be written by hand."""
    missing = [
        f"{name}.{field}"
        for name, model in _fields(Config).items()
        for decorator in model.__pydantic_decorators__.field_validators.values()
        if decorator.info.mode == "before"
        for field in decorator.info.fields
        if (name, field) not in OVERRIDES
    ]
    assert missing == [], f"add these fields to composekit.config.schema.OVERRIDES: {missing}"


def test_constrained_fields_take_their_schema_from_the_model() -> None:
    """A field constrained with Field(...)/Strict() (config/model.py) validates and describes itself from one place:
    no hand-written schema, and the schema's bounds are the model's."""
    constrained = [
        (name, field)
        for name, model in _fields(Config).items()
        for field, info in model.model_fields.items()
        if any(isinstance(m, Expected) for m in info.metadata)
        or any(isinstance(m, Expected) for arg in get_args(info.annotation) for m in getattr(arg, "__metadata__", ()))
    ]
    assert ("App", "port") in constrained and ("Config", "domain") in constrained
    # domain is the one exception: it also takes a list (Config._domain_list), its items of the same pattern.
    assert [c for c in constrained if c in OVERRIDES] == [("Config", "domain")]
    schema = config_schema()
    pids = schema["$defs"]["App"]["properties"]["pids_limit"]
    assert (pids["minimum"], pids["maximum"]) == (MIN_PIDS_LIMIT, MAX_PIDS_LIMIT)
    assert schema["$defs"]["App"]["properties"]["max_workers"]["anyOf"] == [
        {"type": "integer", "minimum": 1},
        {"type": "null"},
    ]


def test_check_value_words_a_constrained_field_as_the_loader_does() -> None:
    expected = 'expected a fully qualified lowercase domain name such as "shop.example.com", got "Shop.example.com"'
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        check_value(Config, "domain", "Shop.example.com")
    assert check_value(App, "module", "app.main:app") == "app.main:app"


def test_overrides_name_real_fields() -> None:
    models = _fields(Config)
    stale = [f"{m}.{f}" for m, f in OVERRIDES if m not in models or f not in models[m].model_fields]
    assert stale == []


def test_key_types_match_the_validators() -> None:
    schema = config_schema()
    app = schema["$defs"]["App"]["properties"]
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["title"] == "composekit.yaml"
    assert schema["additionalProperties"] is False
    assert app["workers"]["anyOf"] == [{"const": "auto"}, {"type": "integer", "minimum": 1}]
    assert app["workers"]["default"] == "auto"
    assert app["memory"]["anyOf"][0]["type"] == "string" and app["memory"]["anyOf"][-1] == {"type": "null"}
    assert app["worker_memory"]["anyOf"][1] == {"type": "integer", "minimum": 1}
    assert app["port"] == {
        "title": "Port",
        "default": 8000,
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": "The port the app listens on inside its container.",
    }
    assert schema["$defs"]["Migrate"]["properties"]["command"]["anyOf"][1]["type"] == "array"
    assert schema["$defs"]["Images"]["properties"]["postgres"]["default"] == "postgres:17"
    database = schema["$defs"]["Database"]
    assert database["required"] == ["password_file"]
    assert database["properties"]["engine"]["const"] == "postgres"
    assert "description" in schema["properties"]["database"]


def test_schema_is_stable_json() -> None:
    assert schema_json() == schema_json()
    assert json.loads(schema_json()) == config_schema()


def test_cli_prints_the_schema_on_stdout() -> None:
    result = CliRunner().invoke(cli_app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == config_schema()


# The schema and the loader agree, value by value (needs the `jsonschema` package).
CASES: list[tuple[dict[str, Any], bool]] = [
    ({"app": {"workers": "auto"}}, True),
    ({"app": {"workers": 3}}, True),
    ({"app": {"workers": 0}}, False),
    ({"app": {"workers": "many"}}, False),
    ({"app": {"memory": "512M"}}, True),
    ({"app": {"memory": "1g"}}, True),
    ({"app": {"memory": "256MiB"}}, True),
    ({"app": {"memory": 536870912}}, True),
    ({"app": {"memory": "lots"}}, False),
    ({"app": {"worker_memory": "300M"}}, True),
    ({"app": {"port": 0}}, False),
    ({"app": {"port": 8080}}, True),
    ({"app": {"health_path": "health"}}, False),
    ({"app": {"environment": {"LOG_LEVEL": "info", "DEBUG": False, "N": 3}}}, True),
    ({"app": {"environment": {"bad-name": "x"}}}, False),
    ({"app": {"volumes": {"data": "/data"}}}, True),
    ({"app": {"volumes": {"data": "relative"}}}, False),
    ({"app": {"volumes": {"acme": "/x"}}}, False),
    ({"app": {"module": "app/main.py"}}, False),
    ({"migrate": {"command": "alembic upgrade head"}}, True),
    ({"migrate": {"command": ["alembic", "upgrade", "head"]}}, True),
    ({"migrate": {"command": []}}, False),
    ({"database": {"password_file": "secrets/db_password"}}, True),
    ({"database": {"password_file": "s", "name": "Bad-Name"}}, False),
    ({"database": {"name": "x"}}, False),
    ({"database": {"engine": "mysql", "password_file": "s"}}, False),
    ({"images": {"postgres": "postgres:17"}}, True),
    ({"images": {"postgres": "not an image"}}, False),
    ({"acme": {"ca_server": "staging"}}, True),
    ({"acme": {"ca_server": "http://insecure"}}, False),
    ({"ports": {"https": 70000}}, False),
    ({"unknown": 1}, False),
    ({"name": "Shop"}, False),
    ({"domain": "localhost"}, False),
]


def _merged(change: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(MINIMAL))
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(("change", "valid"), CASES)
def test_schema_and_loader_agree(change: dict[str, Any], valid: bool) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema to cross-check the schema")
    doc = _merged(change)
    try:
        parse_config(doc)
        loader_ok = True
    except ConfigError:
        loader_ok = False
    errors = list(jsonschema.Draft202012Validator(config_schema()).iter_errors(doc))
    assert (loader_ok, not errors) == (valid, valid), errors


@pytest.mark.parametrize("path", sorted((REPO / "stacks").glob("*/composekit.yaml")), ids=lambda p: p.parent.name)
def test_templates_are_valid_against_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema to cross-check the schema")
    jsonschema.Draft202012Validator(config_schema()).validate(yaml.safe_load(path.read_text()))
