"""The CLI in mode: swarm, where it decides without an engine."""

from __future__ import annotations

import sys
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


class NoEngine:
    """A Docker that fails the test on any call: nothing may be asked of the engine, nor created on it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the engine was asked: {name}")


ROLLBACK_REFUSED = (
    "composekit rollback applies to mode: compose only (nothing was changed): in mode: swarm, check out the earlier "
    "release's commit and run `composekit up` (it deploys that code; the migration is not reversed), or undo the app "
    "service's last update with `docker service rollback shop_app` on the manager"
)
RELEASES_REFUSED = (
    "composekit releases applies to mode: compose only: in mode: swarm no release history is recorded; the serving "
    "release is the tag of the app service's image: `docker service inspect shop_app --format "
    "'{{.Spec.TaskTemplate.ContainerSpec.Image}}'` on the manager"
)


@pytest.mark.parametrize(("argv", "message"), [(["rollback"], ROLLBACK_REFUSED), (["releases"], RELEASES_REFUSED)])
def test_rollback_and_releases_refuse_swarm_mode_before_reaching_the_engine(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    def no_engine(*args: object) -> object:
        raise AssertionError("the CLI connected to an engine")

    monkeypatch.setattr(sys.modules["composekit.cli.releases"], "engine_for", no_engine)
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1
    assert result.stderr == f"error: {message}\n"


def test_the_library_refuses_a_swarm_rollback_before_taking_the_lock(project_dir: Path) -> None:
    from composekit.config.project import load_project
    from composekit.deploy import list_releases, rollback
    from composekit.errors import UserError

    project = load_project((project_dir / "composekit.yaml",))
    with pytest.raises(UserError) as caught:
        rollback(project, docker=NoEngine())  # type: ignore[arg-type]
    assert str(caught.value) == ROLLBACK_REFUSED
    with pytest.raises(UserError) as caught:
        list_releases(project, NoEngine())  # type: ignore[arg-type]
    assert str(caught.value) == RELEASES_REFUSED
