"""Every rendered compose file is valid against the Compose Specification's JSON Schema.

The schema is the copy Compose v2 validates with (tests/data/compose-spec.json, see tests/data/README.md),
so a key Compose would reject (a typo, a wrong type, a value outside its enum) fails here, without Docker.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from composekit.config.project import load_project
from composekit.render.stack import render_stack

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
GOLDEN = sorted(TESTS.glob("golden/*/compose.yaml"))
# mode: swarm's stack files (the compose-spec covers the deploy keys `docker stack deploy` reads).
SWARM_GOLDEN = sorted([*TESTS.glob("golden/*/stack.yml"), *TESTS.glob("golden/*/migrate.yml")])
TEMPLATES = sorted(REPO.glob("stacks/*/composekit.yaml"))


@cache
def validator() -> Validator:
    schema = json.loads((TESTS / "data" / "compose-spec.json").read_text())
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def violations(compose: str) -> list[str]:
    """Every schema violation as "key/path: message", empty when the document is valid."""
    doc = yaml.safe_load(compose)
    errors = sorted(validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def render_template(config: Path, tmp_path: Path) -> str:
    """The template's compose file, rendered from a copy given the secret files it names (kept out of git)."""
    copy = tmp_path / config.parent.name
    shutil.copytree(config.parent, copy, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
    data = yaml.safe_load(config.read_text()) or {}
    files = [data["database"]["password_file"]] if data.get("database") else []
    files += list(data["app"].get("secrets", {}).values())  # the companions' (fastapi-worker)
    files += [a["password_file"] for a in data.get("accessories", {}).values() if "password_file" in a]
    for file in files:
        secret = copy / file
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("not-a-real-password\n")
    return render_stack(load_project((copy / config.name,))).compose


def test_there_is_something_to_check() -> None:
    assert {p.parent.name for p in GOLDEN} >= {"fastapi", "fastapi-postgres"}
    assert {p.parent.name for p in TEMPLATES} >= {"fastapi", "fastapi-postgres"}


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.parent.name)
def test_golden_compose_file_is_valid(golden: Path) -> None:
    assert violations(golden.read_text()) == []


def test_there_are_swarm_files_to_check() -> None:
    assert {f"{p.parent.name}/{p.name}" for p in SWARM_GOLDEN} >= {
        "swarm-fastapi/stack.yml",
        "swarm-fastapi/migrate.yml",
        "swarm-fastapi-postgres/stack.yml",
        "swarm-fastapi-postgres/migrate.yml",
    }


@pytest.mark.parametrize("golden", SWARM_GOLDEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_swarm_file_is_valid(golden: Path) -> None:
    assert violations(golden.read_text()) == []


@pytest.mark.parametrize("config", TEMPLATES, ids=lambda p: p.parent.name)
def test_template_renders_a_valid_compose_file(config: Path, tmp_path: Path) -> None:
    assert violations(render_template(config, tmp_path)) == []


EVERY_OPTION = """\
name: full
domain: full.example.com
acme: {email: ops@example.com, ca_server: "https://acme.internal:14000/dir", ca_certificates: [ca.pem],
       challenge: tls}
app:
  module: app.main:app
  port: 9000
  health_path: /healthz
  workers: 3
  cpus: 1.5
  memory: 1G
  env_file: app.env
  environment: {LOG_LEVEL: info}
  volumes: {data: /data, uploads: /srv/uploads}
  read_only: false
  pids_limit: 512
  cap_add: [CHOWN]
logging: {driver: local, max_size: 5m, max_file: 2}
migrate: {command: [alembic, upgrade, head]}
database: {name: full, user: full, password_file: secrets/db_password}
images: {python: "python:3.12-slim", traefik: "traefik:v3.7", postgres: "postgres:16"}
ports: {http: 8080, https: 8443}
"""


def test_every_option_renders_a_valid_compose_file(tmp_path: Path) -> None:
    files = {
        "composekit.yaml": EVERY_OPTION,
        "requirements.txt": "fastapi\n",
        "ca.pem": "x\n",
        "app.env": "SECRET_KEY=x\n",
        "secrets/db_password": "x\n",
    }
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    compose = render_stack(load_project((tmp_path / "composekit.yaml",))).compose
    doc: dict[str, Any] = yaml.safe_load(compose)
    # The options did reach the compose file, so the schema saw them.
    app = doc["services"]["app"]
    assert app["deploy"]["resources"]["limits"] == {"cpus": "1.5", "memory": "1024m", "pids": 512}
    assert (app["cap_add"], app["logging"]["driver"]) == (["CHOWN"], "local")
    assert "read_only" not in app
    assert app["env_file"] == ["../app.env"]
    assert {"db", "migrate"} <= set(doc["services"]) and {"data", "uploads"} <= set(doc["volumes"])
    assert violations(compose) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("services", "app", "depends_on", "migrate", "condition"),
            "service_finished",
            "services/app/depends_on: {'files': {'condition': 'service_completed_successfully'}, "
            "'migrate': {'condition': 'service_finished'}} is not valid under any",
        ),
        (
            ("services", "app", "helthcheck"),
            {"test": ["CMD", "true"]},
            "services/app: 'helthcheck' does not match any of the regexes: '^x-'",
        ),
        (("services", "app", "ports"), "80:80", "services/app/ports: '80:80' is not of type 'array'"),
    ],
)
def test_the_schema_catches_what_compose_would_reject(path: tuple[str, ...], value: Any, message: str) -> None:
    doc: dict[str, Any] = yaml.safe_load(GOLDEN[0].read_text())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = violations(yaml.safe_dump(doc))
    assert len(found) == 1 and found[0].startswith(message), found
