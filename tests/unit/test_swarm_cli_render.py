"""`composekit render` in mode: swarm: writes the swarm files and prints swarm_warnings on stderr; `--out -` prints
stack.yml for reading; `--check` compares the swarm files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app as cli

CONFIG = {
    "name": "shop",
    "domain": "shop.example.com",
    "mode": "swarm",
    "app": {"module": "app.main:app", "workers": 3},
}


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_render_writes_the_swarm_files_and_warns(project_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["render"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "warning: app/workers: 3 runs gunicorn with 3 worker processes in each of the app's containers; in mode: "
        "swarm, Swarm replicates containers (app/replicas), so one process per container is the usual choice: "
        "remove app/workers to run one uvicorn process per container\n"
    )
    out = project_dir / ".composekit"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".composekit-manifest.json",
        "Dockerfile",
        "Dockerfile.dockerignore",
        "stack.yml",
        "swarm/gunicorn.conf.py",
        "swarm/socket_proxy.py",
        "swarm/traefik-dynamic.yml",
        "swarm/traefik.yml",
    ]
    assert CliRunner().invoke(cli, ["render", "--check"]).exit_code == 0
    (out / "swarm" / "traefik.yml").write_text("changed\n")
    check = CliRunner().invoke(cli, ["render", "--check"])
    assert check.exit_code == 1
    assert "--- .composekit/swarm/traefik.yml (on disk)\n+++ .composekit/swarm/traefik.yml (rendered)\n" in check.stdout


def test_render_to_stdout_prints_the_stack_file(project_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        "# For reading: relative paths below resolve from .composekit/, where `composekit render` writes this file",
        "# together with the files it refers to. To run the stack use .composekit/stack.yml (or `composekit up`).",
    ]
    assert list(yaml.safe_load(result.stdout)["services"]) == ["traefik", "socket-proxy", "app"]
    assert not (project_dir / ".composekit").exists()
