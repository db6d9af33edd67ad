"""`up` and `rollback` lower their CPU priority before they deploy (default 10, --nice N, 0 keeps it): measured by
benchmarks/redeploy_downtime.py, the deploy's own processes otherwise push the serving stack's p99 up on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import composekit.cli.releases
import composekit.cli.stack
from composekit.cli import app as cli

CONFIG = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


class Stop(Exception):
    """Raised by the stubbed deploy: the test only looks at what happened before it."""


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.chdir(tmp_path)
    niced: list[str] = []  # what happened, in order

    def nice(increment: int) -> int:
        niced.append(f"nice {increment}")
        return increment

    def deploy(*args: Any, **kwargs: Any) -> Any:
        niced.append("deploy")
        raise Stop

    monkeypatch.setattr(os, "nice", nice)
    monkeypatch.setattr(composekit.cli.stack, "up_stack", deploy)
    monkeypatch.setattr(composekit.cli.releases, "rollback_stack", deploy)
    return niced


@pytest.mark.parametrize("command", ["up", "rollback"])
@pytest.mark.parametrize(("args", "expected"), [([], ["nice 10", "deploy"]), (["--nice", "3"], ["nice 3", "deploy"])])
def test_the_deploy_runs_at_a_lower_cpu_priority(
    project_dir: list[str], command: str, args: list[str], expected: list[str]
) -> None:
    result = CliRunner().invoke(cli, ["--host", "unix:///var/run/docker.sock", command, *args])
    assert isinstance(result.exception, Stop), result.output
    assert project_dir == expected


@pytest.mark.parametrize("command", ["up", "rollback"])
def test_nice_0_keeps_the_priority(project_dir: list[str], command: str) -> None:
    result = CliRunner().invoke(cli, ["--host", "unix:///var/run/docker.sock", command, "--nice", "0"])
    assert isinstance(result.exception, Stop), result.output
    assert project_dir == ["deploy"]


def test_nice_out_of_range_is_refused(project_dir: list[str]) -> None:
    result = CliRunner().invoke(cli, ["up", "--nice", "20"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Invalid value for '--nice': Input should be less than or equal to 19" in result.output
    assert project_dir == []


def test_children_inherit_the_priority() -> None:
    code = "import os, subprocess, sys; os.nice(10); print(subprocess.check_output(['nice']).decode().strip())"
    before = os.nice(0)
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert int(shown) == min(before + 10, 19)
