"""A volume added after `init` is writable by the non-root app (#7.6), and WORKERS_PER_CORE from app/env_file
sizes the workers when the config leaves workers_per_core alone (#7.8). One real deploy of `init`'s output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def stack(make_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    repo = tmp_path_factory.mktemp("src") / "pip-app"
    shutil.copytree(FIXTURES / "pip-app", repo)
    init = subprocess.run(
        [sys.executable, "-m", "composekit.cli", "init", str(repo)],
        cwd=repo.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    assert "USER app" in (repo / "Dockerfile").read_text() and "/data" not in (repo / "Dockerfile").read_text()
    # Afterwards, as a user would: a volume, one CPU, and the old official image's worker setting in the env file.
    config = yaml.safe_load((repo / "composekit.yaml").read_text())
    config["app"].update({"volumes": {"data": "/data"}, "cpus": 1, "env_file": "app.env"})
    (repo / "composekit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (repo / "app.env").write_text("# the old official image's convention\nWORKERS_PER_CORE=3\n")
    made: Stack = make_stack(repo, "cfgcli-vol")
    return made


def app_user(stack: Stack) -> str:
    image = stack.docker.image.inspect(f"{stack.name}-app:latest")
    return str(image.config.user)


def test_first_up_gives_the_new_volume_to_the_app_user(stack: Stack) -> None:
    result = stack.ck("up", "--no-smoke")
    assert (
        f"volume {stack.name}_data: gave its top directory /data to the app's user app (uid:gid 0:0 -> "
        in result.stderr
    ), result.stderr
    assert "already exists but was not created by Docker Compose" not in result.stderr
    app = stack.containers()["app"]
    user = app_user(stack)
    assert user == "app"
    wrote = stack.docker.container.execute(app, ["sh", "-c", "echo hello > /data/probe && cat /data/probe"], user=user)
    assert str(wrote).strip() == "hello"
    owner = stack.docker.container.execute(app, ["stat", "-c", "%U", "/data", "/data/probe"], user=user)
    assert str(owner).split() == ["app", "app"]
    volume = stack.docker.volume.inspect(f"{stack.name}_data")
    assert volume.labels["com.docker.compose.project"] == stack.name  # Compose adopted it as its own


def test_second_up_does_not_chown_again_and_keeps_the_data(stack: Stack) -> None:
    result = stack.ck("up", "--no-smoke")
    assert "gave its top directory" not in result.stderr
    app = stack.containers()["app"]
    assert str(stack.docker.container.execute(app, ["cat", "/data/probe"])).strip() == "hello"
    leftovers = stack.docker.container.list(all=True, filters=[("ancestor", f"{stack.name}-app:latest")])
    assert sorted(c.name for c in leftovers) == [f"{stack.name}-app-1"]  # the chown container removed itself


def test_workers_per_core_from_the_env_file_is_honoured(stack: Stack) -> None:
    compose = yaml.safe_load((stack.dir / ".composekit" / "compose.yaml").read_text())
    assert "WORKERS_PER_CORE" not in compose["services"]["app"]["environment"]
    status = json.loads(stack.ck("status", "--json").stdout)
    app = next(s for s in status["services"] if s["service"] == "app")
    assert app["workers"] == 3  # cpus 1 x WORKERS_PER_CORE=3; before the fix the rendered default 1 won: 2 workers
    assert "composekit: workers=3 (cgroup" in stack.ck("logs", "app").stdout


def test_the_same_setting_in_config_and_env_file_is_refused(stack: Stack) -> None:
    (stack.dir / "twice.yaml").write_text("app: {workers_per_core: 2}\n")
    result = stack.ck("render", "--check", extra_config=("twice.yaml",), check=False)
    assert result.returncode == 1
    assert result.stderr == (
        "error: composekit.yaml + local.yaml + twice.yaml: app/workers_per_core: WORKERS_PER_CORE is also set in "
        "app.env (line 2); keep one of the two: remove app/workers_per_core to use the env file's value, or the "
        "line to use the config's\n"
    )
