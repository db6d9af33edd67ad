"""The self-check's verdict: a failed probe during a switch fails `up`; --rollback-on-error switches back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import composekit.deploy.self_check
from composekit.config.project import Project, load_project
from composekit.engine.docker import ContainerInfo
from composekit.engine.probes import ProbeReport
from composekit.engine.switch import SwitchResult
from composekit.engine.wait import Deadline
from composekit.errors import SelfCheckError

ENGINE: Any = None  # set below, once Engine exists
FAILED = ProbeReport(sent=40, failed=3, slowest_ms=812.4, failures=["HTTP 500", "HTTP 500", "HTTP 500"])


class Engine:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def exec(self, name: str, argv: list[str]) -> str:
        return json.dumps([{"id": "r1", "image": "sha256:old", "created": "2026-11-29T10:00:00Z", "config_hash": "h"}])

    def containers(self) -> list[ContainerInfo]:
        return [ContainerInfo("id", "shop-routes-1", "routes", "running", None, None, 0, None, None, 1, "sha256:py")]

    def tag(self, image: str, tag: str) -> None:
        self.calls.append(("tag", image, tag))


ENGINE = Engine()


def project(tmp_path: Path) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


def switched(probes: ProbeReport) -> SwitchResult:
    return SwitchResult("r2", ["shop-app-2"], True, 3.2, "h2", probes, "sha256:old")


def test_failed_probes_switch_back_with_rollback_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine: Any = Engine()
    said: list[str] = []
    back = SwitchResult("r1", ["shop-app-3"], True, 3.0)
    monkeypatch.setattr(composekit.deploy.self_check, "switch_app", lambda project, docker, deadline, release, *a: back)
    with pytest.raises(SelfCheckError) as caught:
        composekit.deploy.self_check.self_check(
            project(tmp_path),
            engine,
            Deadline(60),
            switched(FAILED),
            said.append,
            None,
            True,
        )
    assert str(caught.value) == (
        "the self-check failed: 40 probes through Traefik during the switch, 3 failed, slowest 812 ms (first: "
        "HTTP 500; HTTP 500; HTTP 500); switched back to release r1 (shop-app-3) because of --rollback-on-error"
    )
    assert engine.calls == [("tag", "sha256:old", "shop-app:latest")]
    assert said == [
        "self-check: 40 probes through Traefik during the switch, 3 failed, slowest 812 ms",
        "switching back to the previous release (--rollback-on-error)",
    ]


def test_failed_probes_without_the_flag_keep_the_release_and_say_how_to_go_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[str] = []
    monkeypatch.setattr(
        composekit.deploy.self_check,
        "record_release",
        lambda project, docker, release, h, **_: recorded.append(release),
    )
    with pytest.raises(SelfCheckError) as caught:
        composekit.deploy.self_check.self_check(
            project(tmp_path),
            ENGINE,
            Deadline(60),
            switched(FAILED),
            lambda _: None,
            None,
            False,
        )
    assert str(caught.value) == (
        "the self-check failed: 40 probes through Traefik during the switch, 3 failed, slowest 812 ms (first: "
        "HTTP 500; HTTP 500; HTTP 500); release r2 is serving: `composekit rollback` switches back "
        "(`up --rollback-on-error` does it by itself)"
    )
    assert recorded == ["r2"]


def test_a_clean_switch_is_reported(tmp_path: Path) -> None:
    said: list[str] = []
    clean = ProbeReport(sent=52, failed=0, slowest_ms=41.0)
    composekit.deploy.self_check.self_check(
        project(tmp_path),
        ENGINE,
        Deadline(60),
        switched(clean),
        said.append,
        None,
        False,
    )
    assert said == ["self-check: 52 probes through Traefik during the switch, 0 failed, slowest 41 ms"]
