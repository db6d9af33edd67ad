"""The stack templates for real: `composekit init --template NAME` into an empty directory, `up`, HTTPS.

fastapi: SQLite on a volume, a migration first. fastapi-postgres: a PostgreSQL service, the migration
waits for it to be healthy and really runs against it; the app refuses to start without it. Also: the
templates ship in a non-editable install.
"""

from __future__ import annotations

import filecmp
import stat
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO, Stack, TestEnv

pytestmark = pytest.mark.integration


def init_template(parent: Path, template: str, name: str, python: str = sys.executable) -> Path:
    target = parent / name
    target.mkdir(parents=True)
    result = subprocess.run(
        [python, "-m", "composekit.cli", "init", "--template", template, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=parent,
    )
    assert result.returncode == 0, result.stderr
    assert f"copying the example app of template '{template}'" in result.stderr
    return target


def up(stack: Stack) -> None:
    result = stack.ck("up", "--no-smoke")
    assert result.stdout.strip().endswith(f"https://{stack.domain}/")


def test_templates_ship_in_a_non_editable_install(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(REPO)], capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run(
        [python, "-c", "import composekit.scaffold.templates as s; print(s._templates_root())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(env) in where  # from site-packages, not from this checkout
    target = init_template(tmp_path, "fastapi-postgres", "installed", python=python)
    for rel in ("app/main.py", "app/migrate.py", "app/db.py", "requirements.txt"):
        assert filecmp.cmp(target / rel, REPO / "stacks" / "fastapi-postgres" / rel, shallow=False), rel


def test_fastapi_template_up_and_serving(make_stack: Any, tmp_path: Path) -> None:
    source = init_template(tmp_path, "fastapi", "tmpl-fastapi")
    stack: Stack = make_stack(source, "tmpl-fastapi")
    up(stack)
    response = stack.wait_https("/")
    assert response.status_code == 200
    assert response.json()["schema_version"] == 1  # the SQLite migration ran before the app started
    created = stack.https("/notes", method="POST", json={"text": "hello"})
    assert created.status_code == 201
    assert stack.https("/notes").json() == [{"id": 1, "text": "hello"}]


def test_fastapi_postgres_template_migrates_postgres_and_serves(
    make_stack: Any, testenv: TestEnv, tmp_path: Path
) -> None:
    source = init_template(tmp_path, "fastapi-postgres", "tmpl-pg")
    stack: Stack = make_stack(source, "tmpl-pg", images={"postgres": testenv.postgres_image})
    # Only the deploying account reads the password file; the database, the migration and the app still get it.
    assert stat.S_IMODE((stack.dir / "secrets" / "db_password").stat().st_mode) == 0o600
    up(stack)

    response = stack.wait_https("/")
    assert response.status_code == 200
    body = response.json()
    assert body["database"].startswith("PostgreSQL ")
    assert body["schema_version"] == 1
    assert stack.https("/notes", method="POST", json={"text": "stored in postgres"}).status_code == 201

    containers = stack.containers()
    assert containers["db"].state.health.status == "healthy"
    assert containers["migrate"].state.exit_code == 0
    logs = stack.docker.container.logs(containers["migrate"])
    assert "migrate: applied version 1" in logs
    database = yaml.safe_load((stack.dir / "composekit.yaml").read_text())["database"]["name"]
    rows = stack.docker.container.execute(
        containers["db"],
        [
            "psql",
            "-U",
            database,
            "-d",
            database,
            "-tA",
            "-c",
            "SELECT (SELECT count(*) FROM schema_migrations) || ' ' || (SELECT text FROM notes ORDER BY id LIMIT 1)",
        ],
    )
    assert str(rows).strip() == "1 stored in postgres"

    # The password reaches the containers as a file only: not in the compose file, not in any environment.
    password = (stack.dir / "secrets" / "db_password").read_text().strip()
    assert password not in (stack.dir / ".composekit" / "compose.yaml").read_text()
    for name in ("db", "migrate", "app"):
        assert not any(password in entry for entry in containers[name].config.env), name
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/db_password" in containers["db"].config.env
