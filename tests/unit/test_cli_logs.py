"""`composekit logs --tail N`: 0 reaches Docker as `--tail 0` (no history; it once meant "all"), a negative N is
refused by the command line. The argv is what a stand-in `docker` receives (it prints its arguments)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from python_on_whales import DockerClient
from typer.testing import CliRunner

from composekit.cli import app
from composekit.engine.docker import Docker


@pytest.fixture
def docker(tmp_path: Path) -> Docker:
    """A Docker whose `docker` is a script printing its arguments, one a line, as the log lines it streams."""
    fake = tmp_path / "docker"
    script = [
        "#!/bin/sh",
        """case "$*" in *" inspect "*) echo '[{"ID": "x1"}]'; exit 0;; esac""",  # service logs inspects first
        'for arg in "$@"; do echo "$arg"; done',
    ]
    fake.write_text("\n".join(script) + "\n", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    compose = tmp_path / "compose.yaml"
    d = Docker("shop", [compose])
    d.client = DockerClient(client_call=[str(fake)], compose_files=[compose], compose_project_name="shop")
    return d


def _tail(argv: list[str]) -> str | None:
    return argv[argv.index("--tail") + 1] if "--tail" in argv else None


@pytest.mark.parametrize(("tail", "passed"), [(0, "0"), (5, "5"), (None, None)])
def test_compose_logs_passes_tail_through(docker: Docker, tail: int | None, passed: str | None) -> None:
    argv = list(docker.follow_logs(["app"], tail, follow=False))
    assert argv[argv.index("compose") :][-1] == "app" and "logs" in argv
    assert _tail(argv) == passed


@pytest.mark.parametrize(("tail", "passed"), [(0, "0"), (5, "5"), (None, None)])
def test_service_logs_passes_tail_through(docker: Docker, tail: int | None, passed: str | None) -> None:
    argv = list(docker.follow_service_logs(["shop_app"], tail, follow=False))
    assert argv[:2] == ["service", "logs"] and argv[-1] == "shop_app"
    assert _tail(argv) == passed


def test_a_negative_tail_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["logs", "--tail", "-5"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Invalid value for '--tail'" in result.stderr
