"""The CLI in mode: swarm, where it decides without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app as cli

CONFIG = {"name": "shop", "domain": "shop.example.com", "mode": "swarm", "app": {"module": "app.main:app"}}


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_logs_follow_needs_one_service_in_swarm_mode(project_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["logs", "--follow"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: logs --follow in mode: swarm follows one service: name it (`composekit logs -f app`)\n"
    )
