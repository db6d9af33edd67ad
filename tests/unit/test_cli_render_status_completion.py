"""`render --out -` says it is for reading (#7.9), `status` shows a row whose worker count failed (#7.10), and
bash completion works through typer's protocol (#7.11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import composekit.cli.observe
from composekit.cli import app as cli
from composekit.engine.status import ServiceStatus, StackStatus
from composekit.engine.target import Engine

CONFIG = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app", "env_file": "app.env"}}
COMPOSEKIT = Path(sys.executable).parent / "composekit"


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "app.env").write_text("SECRET_KEY=x\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_render_to_stdout_is_marked_for_reading_and_writes_nothing(project_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["render", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        "# For reading: relative paths below resolve from .composekit/, where `composekit render` writes this file",
        "# together with the files it refers to. To run the stack use .composekit/compose.yaml (or `composekit up`).",
    ]
    doc = yaml.safe_load(result.stdout)
    assert doc["services"]["app"]["env_file"] == ["../app.env"]  # relative to .composekit/, as the header says
    assert result.stderr == (
        "note: printed for reading; its relative paths resolve from .composekit/ only. For a runnable stack run "
        "`composekit render` (writes it there with the files it refers to)\n"
    )
    assert not (project_dir / ".composekit").exists()


def test_status_prints_the_row_and_the_note_when_the_worker_count_failed(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        ServiceStatus(
            "app",
            "shop-app-1",
            "running",
            "healthy",
            0,
            "2026-01-01T00:00:00",
            None,
            "workers unknown: counting them in shop-app-1 failed (container is restarting)",
        ),
        ServiceStatus("traefik", "shop-traefik-1", "running", "healthy", 0, "2026-01-01T00:00:00"),
    ]

    def status(project: object, engine: Engine) -> StackStatus:
        return StackStatus("shop", "https://shop.example.com/", rows, engine.describe())

    monkeypatch.setattr(composekit.cli.observe, "stack_status", status)
    result = CliRunner().invoke(cli, ["--host", "unix:///var/run/docker.sock", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    app_row = next(line for line in result.stdout.splitlines() if "shop-app-1" in line)
    assert [cell.strip() for cell in app_row.strip("│ ").split("│")][:5] == [
        "app",
        "shop-app-1",
        "running",
        "healthy",
        "?",
    ]
    assert result.stderr == (
        "composekit: engine: unix:///var/run/docker.sock (from --host)\n"
        "composekit: app: workers unknown: counting them in shop-app-1 failed (container is restarting)\n"
    )


def test_bash_completion_script_and_protocol() -> None:
    # typer 0.29's --show-completion detects the shell from the parent processes (shellingham) and takes no shell
    # argument; with detection off, as typer's own tests turn it off, it takes the shell named: the test then passes
    # however pytest was started (from a shell or not).
    no_detection = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = subprocess.run(
        [str(COMPOSEKIT), "--show-completion", "bash"], capture_output=True, text=True, env=no_detection, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "_COMPOSEKIT_COMPLETE=complete_bash" in shown.stdout
    assert "complete -o default -F _composekit_completion composekit" in shown.stdout

    def complete(words: str) -> list[str]:
        """What the script above asks composekit for at each <TAB>: answered in-process by the same click command
        (the console script runs it; test_cli_help runs the script itself)."""
        env = {"_COMPOSEKIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        done = CliRunner().invoke(cli, [], env=env, prog_name="composekit")
        assert done.exit_code == 0 and done.exception is None, done.output
        return done.stdout.split()

    assert complete("composekit ren") == ["render"]
    assert complete("composekit up --ti") == ["--timeout"]
