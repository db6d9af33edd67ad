"""down, logs, status and config write nothing into the project (#7.9): .composekit/ absent stays absent, and
present stays byte- and mtime-identical, even when the config changed since it was rendered. Real engine and
Compose; the stack is not running, so no host ports are needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, TestEnv

pytestmark = pytest.mark.integration

COMMANDS = (("down",), ("logs",), ("logs", "app", "--tail", "5"), ("status",), ("status", "--json"), ("config",))


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def ck(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "composekit.cli", *args], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"composekit {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture
def project(testenv: TestEnv, tmp_path: Path) -> Path:
    target = tmp_path / "cfgcli-ro"
    shutil.copytree(REPO / "tests" / "fixtures" / "pip-app", target)
    (target / "app.env").write_text("SECRET_KEY=x\n")
    config = {
        "name": "cfgcli-ro",
        "domain": "cfgcli-ro.composekit.test",
        "app": {"module": "app.main:app", "env_file": "app.env", "volumes": {"data": "/data"}},
        "images": {"python": testenv.python_image, "traefik": testenv.traefik_image},
    }
    (target / "composekit.yaml").write_text(yaml.safe_dump(config))
    return target


def test_absent_output_directory_stays_absent(project: Path) -> None:
    before = snapshot(project)
    for args in COMMANDS:
        ck(project, *args)
    assert not (project / ".composekit").exists()
    assert snapshot(project) == before


def test_rendered_files_stay_byte_and_mtime_identical_even_when_stale(project: Path) -> None:
    ck(project, "render")
    config = yaml.safe_load((project / "composekit.yaml").read_text())
    config["app"]["environment"] = {"LOG_LEVEL": "debug"}  # the render on disk is now stale
    (project / "composekit.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(project)
    assert ".composekit/compose.yaml" in before
    for args in COMMANDS:
        ck(project, *args)
    assert snapshot(project) == before
