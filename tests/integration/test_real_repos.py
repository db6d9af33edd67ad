"""`composekit init` then a real `up` on repositories laid out as real ones are (tests/fixtures/): a uv workspace
member in backend/, Poetry in a subdirectory, split requirements, a src/ layout, an app factory. One deploy each:
init's choices (module, health route, migration) are asserted, then HTTPS 200 on the detected health route with
Pebble's certificate, and that the migration ran. Nothing is edited between init and up but what the test machine
needs (local.yaml: the domain, Pebble as ACME CA, the local images). Lock files are generated once per session with
this machine's package index, never committed (they record registry hosts)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import Stack, TestEnv
from .test_init import FIXTURES, composekit_init, poetry_lock, uv_lock

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, Path]) -> dict[str, Path]:
    """Each fixture repository with its lock file generated (once per session, in a tmp dir): copy before use."""
    poetry, uv = tools["poetry"], tools["uv"]
    base = tmp_path_factory.mktemp("locked")
    cache = tmp_path_factory.mktemp("lock-cache")
    repos: dict[str, Path] = {}
    for name in ("uv-workspace", "poetry-subdir", "split-requirements", "src-layout", "app-factory"):
        repos[name] = base / name
        shutil.copytree(FIXTURES / name, repos[name])
    uv_lock(repos["uv-workspace"], uv, cache)  # one lock at the workspace root
    uv_lock(repos["src-layout"], uv, cache)
    poetry_lock(repos["poetry-subdir"] / "service", poetry, cache)
    return repos


def init_and_up(
    locked: dict[str, Path], make_stack: Any, tmp_path: Path, fixture: str, *init_args: str, **overrides: Any
) -> tuple[Stack, str]:
    repo = tmp_path / fixture
    shutil.copytree(locked[fixture], repo)
    said = composekit_init(repo, *init_args)
    stack: Stack = make_stack(repo, f"real-{fixture}", **overrides)
    result = stack.ck("up", "--no-smoke")
    assert result.stdout.strip().endswith(f"https://{stack.domain}/")
    return stack, said


def healthy(stack: Stack, path: str) -> Any:
    response = stack.wait_https(path)
    assert response.status_code == 200, response.text
    assert stack.domain in [v for k, v in stack.peer_certificate()["subjectAltName"] if k == "DNS"]
    return response.json()


def migrate_logs(stack: Stack) -> str:
    container = stack.containers()["migrate"]
    assert container.state.exit_code == 0
    return str(stack.docker.container.logs(container))


def test_uv_workspace_member_in_backend(
    locked: dict[str, Path], make_stack: Any, testenv: TestEnv, tmp_path: Path
) -> None:
    stack, said = init_and_up(
        locked,
        make_stack,
        tmp_path,
        "uv-workspace",
        "--template",
        "fastapi-postgres",
        images={"postgres": testenv.postgres_image},
    )
    assert "module app.main:app: found the FastAPI app in backend/app/main.py" in said
    assert "health route GET /api/v1/utils/health-check/: found in backend/app/api/routes/utils.py" in said
    assert "scripts/prestart.sh found (the prestart convention): migrate/command runs it" in said
    assert healthy(stack, "/api/v1/utils/health-check/") is True
    # prestart.sh ran from backend/: it waited for PostgreSQL, migrated (alembic.ini of backend/, app.* imported
    # from the working directory) and created the initial data.
    body = stack.https("/api/v1/items/").json()
    assert body == {"app": "uv-workspace", "revision": "0001", "items": ["created by alembic", "initial data"]}
    assert "+ alembic upgrade head" in migrate_logs(stack)
    # The image holds the member only: the rest of the repository (a frontend) stays out.
    app = stack.containers()["app"]
    listing = str(stack.docker.container.execute(app, ["ls", "/app"]))
    assert listing.split() == ["backend"]


def test_poetry_project_in_a_subdirectory(locked: dict[str, Path], make_stack: Any, tmp_path: Path) -> None:
    stack, said = init_and_up(locked, make_stack, tmp_path, "poetry-subdir")
    assert "app/path service: the project that declares the dependencies (the build context)" in said
    assert "health route GET /api/status/healthz" in said
    assert healthy(stack, "/api/status/healthz") == {"status": "ok"}
    assert stack.https("/").json() == {"app": "poetry-subdir"}
    assert "migrate" not in stack.containers()


def test_split_requirements_with_a_prestart_script(locked: dict[str, Path], make_stack: Any, tmp_path: Path) -> None:
    stack, said = init_and_up(locked, make_stack, tmp_path, "split-requirements")
    assert "dependencies: pip (requirements/prod.txt) -> Dockerfile" in said
    assert "prestart.sh found (the prestart convention)" in said
    assert healthy(stack, "/ping") == "pong"
    logs = migrate_logs(stack)
    assert "prestart ran in /app as app" in logs and "prestart imported split requirements" in logs


def test_src_layout_with_alembic(locked: dict[str, Path], make_stack: Any, tmp_path: Path) -> None:
    stack, said = init_and_up(locked, make_stack, tmp_path, "src-layout")
    assert "module shop.main:app: found the FastAPI app in src/shop/main.py" in said
    assert "alembic.ini found: migrate/command is `alembic upgrade head`" in said
    assert healthy(stack, "/_/live") == {"status": "alive"}
    assert "Running upgrade  -> 0001" in migrate_logs(stack)


def test_app_factory(locked: dict[str, Path], make_stack: Any, tmp_path: Path) -> None:
    stack, said = init_and_up(locked, make_stack, tmp_path, "app-factory")
    assert "module app.factory:create_app(): found the FastAPI app factory in app/factory.py" in said
    assert healthy(stack, "/status/ready") == {"status": "ready"}
    assert stack.https("/").json() == {"app": "app-factory"}


def test_own_dockerfile_is_checked_after_the_build_and_runs_on_uvicorns_own_worker(
    make_stack: Any, tmp_path: Path
) -> None:
    """A repository with its own Dockerfile, as igorbenav/FastAPI-boilerplate has: running as root, gunicorn and
    uvicorn installed but not uvicorn-worker, src/alembic.ini with a script_location relative to src/."""
    repo = tmp_path / "own-dockerfile"
    shutil.copytree(FIXTURES / "own-dockerfile", repo)
    said = composekit_init(repo)
    assert "kept your Dockerfile; composekit builds the app with it and runs gunicorn in the image" in said
    assert "migrate/command is `sh -c 'cd src && alembic upgrade head'`" in said
    stack: Stack = make_stack(repo, "real-own-dockerfile")
    requirements = stack.dir / "requirements.txt"  # the stack's copy of the repository
    complete = requirements.read_text()
    requirements.write_text(complete.replace("gunicorn\n", ""))

    # Without gunicorn in the image: refused right after the build, with the fix; nothing of the stack was created.
    refused = stack.ck("up", "--no-smoke", check=False)
    assert refused.returncode == 1
    assert "`gunicorn` is not on the image's PATH" in refused.stderr
    assert "fix: install gunicorn and uvicorn-worker in the image" in refused.stderr
    assert "Nothing of the stack was started or changed" in refused.stderr and "Traceback" not in refused.stderr
    assert stack.containers() == {}
    assert not stack.docker.volume.list(filters=[("label", f"com.docker.compose.project={stack.name}")])

    # With gunicorn (and uvicorn's own worker class): deployed, the migration run from src/, a warning about root.
    requirements.write_text(complete)
    deployed = stack.ck("up", "--no-smoke")
    assert f"warning: the app image {stack.name}-app:latest (built from Dockerfile) runs as root" in deployed.stderr
    assert healthy(stack, "/health") == {"status": "ok"}
    assert "Running upgrade  -> 0001" in migrate_logs(stack)
    assert "worker_class=uvicorn.workers.UvicornWorker" in stack.ck("logs", "app").stdout

    # A later image without gunicorn is refused the same way, and the release that serves keeps serving.
    serving = stack.containers()["app"]
    requirements.write_text(complete.replace("gunicorn\n", ""))
    again = stack.ck("up", "--no-smoke", check=False)
    assert again.returncode == 1 and "`gunicorn` is not on the image's PATH" in again.stderr
    assert stack.containers()["app"].id == serving.id
    assert stack.docker.image.inspect(f"{stack.name}-app:latest").id == serving.image  # :latest is what serves
    assert stack.https("/").json() == {"app": "own-dockerfile"}
