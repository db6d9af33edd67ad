"""`composekit init` on sample repositories of each layout, then a real `up` and HTTPS requests.

pip (no migrations, default template), Poetry + Alembic and uv + Alembic (both with the fastapi-postgres
template, so `alembic upgrade head` really runs against PostgreSQL). Lock files are generated here, with
this machine's package index, and never committed: they record registry hosts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Stack, TestEnv

pytestmark = pytest.mark.integration

FIXTURES = REPO / "tests" / "fixtures"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def package_index() -> str:
    """The simple index pip uses here (its config, else pip's own default): what the lock files point at."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        match = re.match(r"^[\w:.-]*\.index-url='([^']+)'$", line.strip())
        if match and "." in line.split("=")[0] and not line.split("=")[0].endswith("extra-index-url"):
            return match.group(1)
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stderr


def poetry_lock(repo: Path, poetry: Path, cache: Path) -> None:
    # The mirror here serves PyPI's simple index but not its JSON API, which Poetry's default source uses.
    with (repo / "pyproject.toml").open("a") as f:
        f.write(f'\n[[tool.poetry.source]]\nname = "machine-index"\nurl = "{package_index()}"\npriority = "primary"\n')
    _run([str(poetry), "lock"], repo, {"POETRY_CACHE_DIR": str(cache), "REQUESTS_CA_BUNDLE": CA_BUNDLE})
    assert (repo / "poetry.lock").is_file()


def uv_lock(repo: Path, uv: Path, cache: Path) -> None:
    _run(
        [str(uv), "lock", "--default-index", package_index()],
        repo,
        {"SSL_CERT_FILE": CA_BUNDLE, "UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never"},
    )
    assert (repo / "uv.lock").is_file()


def composekit_init(repo: Path, *args: str) -> str:
    return _run([sys.executable, "-m", "composekit.cli", "init", *args, str(repo)], repo.parent, timeout=120)


def sample(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "src" / name
    shutil.copytree(FIXTURES / name, target)
    return target


def psql(stack: Stack, sql: str, user: str, db: str) -> str:
    container = stack.containers()["db"]
    return str(stack.docker.container.execute(container, ["psql", "-U", user, "-d", db, "-tA", "-c", sql])).strip()


def up(stack: Stack) -> None:
    result = stack.ck("up", "--no-smoke")
    assert result.stdout.strip().endswith(f"https://{stack.domain}/")


def test_pip_repo_without_migrations(make_stack: Any, tmp_path: Path) -> None:
    repo = sample(tmp_path, "pip-app")
    said = composekit_init(repo)
    assert f"wrote {repo / 'Dockerfile'}" in said and "found the FastAPI app in app/main.py" in said
    stack: Stack = make_stack(repo, "init-pip")
    up(stack)
    response = stack.wait_https("/")
    assert response.status_code == 200 and response.json() == {"app": "pip-app"}
    assert stack.https("/health").json() == {"status": "ok"}
    assert "migrate" not in stack.containers()
    stack.ck("render", "--check")  # what `up` rendered is what render renders


@pytest.mark.parametrize(
    ("fixture", "module", "health"),
    [("poetry-alembic", "service.api:api", "/healthz"), ("uv-alembic", "web.main:application", "/health")],
)
def test_locked_repo_with_alembic_on_postgres(
    make_stack: Any, testenv: TestEnv, tmp_path: Path, tools: dict[str, Path], fixture: str, module: str, health: str
) -> None:
    repo = sample(tmp_path, fixture)
    cache = tmp_path / "cache"
    if fixture.startswith("poetry"):
        poetry_lock(repo, tools["poetry"], cache)
    else:
        uv_lock(repo, tools["uv"], cache)
    said = composekit_init(repo, "--template", "fastapi-postgres")
    assert f"module {module}:" in said
    assert "alembic.ini found: migrate/command is `alembic upgrade head`" in said
    name = f"init-{fixture.split('-')[0]}"
    stack: Stack = make_stack(repo, name, images={"postgres": testenv.postgres_image})
    up(stack)
    response = stack.wait_https("/")
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == "0001"
    assert body["items"] == ["created by alembic"]
    assert body["database"].startswith("PostgreSQL ")
    assert stack.https(health).status_code == 200
    # The migration ran in its own container, against the db service, before the app started.
    containers = stack.containers()
    assert containers["migrate"].state.exit_code == 0
    db = fixture.replace("-", "_")  # init names the database after the repository
    assert psql(stack, "SELECT version_num FROM alembic_version", db, db) == "0001"
    compose_text = (stack.dir / ".composekit" / "compose.yaml").read_text()
    password = (stack.dir / "secrets" / "db_password").read_text().strip()
    assert password not in compose_text
    env = containers["db"].config.env
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/db_password" in env
    assert not any(e.startswith("POSTGRES_PASSWORD=") for e in env)
