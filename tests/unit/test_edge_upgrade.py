"""Upgrading the shared edge (engine/edge_upgrade.py) against a recording fake of the engine: when an upgrade is due,
and the handover's order (new Traefik beside the old, healthy, drain, stop, drain off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.engine import edge_upgrade
from composekit.engine.docker import ContainerInfo
from composekit.engine.edge import EdgeState
from composekit.engine.wait import Deadline
from composekit.errors import UserError
from composekit.render.edge import edge_revision, edge_settings

BASE: dict[str, Any] = {
    "name": "notes",
    "domain": "notes.example.test",
    "edge": "shared",
    "app": {"module": "app.main:app"},
}


def project(tmp_path: Path, **top: Any) -> Project:
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump({**BASE, **top}))
    return load_project((tmp_path / "composekit.yaml",), tmp_path / "out")


def info(name: str, service: str, cid: str, health: str | None = "healthy") -> ContainerInfo:
    return ContainerInfo(cid, name, service, "running", health, None, 0, "2026-12-03T10:00:00Z", None, 1, "img")


OLD = info("composekit-edge-traefik-1", "traefik", "t1")
HOLDER = info("composekit-edge-holder-1", "holder", "h1", None)
ROUTES = info("composekit-edge-routes-1", "routes", "r1", None)


class FakeEdge:
    """The edge's containers and every call made to change them, in order."""

    def __init__(self) -> None:
        self.running = [OLD, HOLDER, ROUTES]
        self.calls: list[str] = []

    def containers(self) -> list[ContainerInfo]:
        return list(self.running)

    def exec(self, container: str, argv: list[str]) -> str:
        if container == HOLDER.name:
            self.calls.append(f"steer to listener {argv[-1]}")
            return ""
        text = yaml.safe_load(argv[-1])
        closing = [n for n, m in text["http"]["middlewares"].items() if "Connection" in str(m)]
        self.calls.append(f"edge file draining {closing or 'nothing'}")
        return ""

    def start_beside(self, service: str, count: int, on_line: Any = None) -> None:
        self.calls.append(f"start_beside {service}={count}")
        self.running.append(info("composekit-edge-traefik-2", "traefik", "t2"))

    def stop_and_remove(self, name: str) -> None:
        self.calls.append(f"stop_and_remove {name}")
        self.running = [c for c in self.running if c.name != name]

    def remove_now(self, name: str) -> None:
        self.calls.append(f"remove_now {name}")
        self.running = [c for c in self.running if c.name != name]

    def container_logs(self, name: str, tail: int) -> str:
        return "level=error msg=boom"


def state(proj: Project, revision: str | None, holder: bool = True) -> EdgeState:
    containers = [OLD, HOLDER, ROUTES] if holder else [OLD, ROUTES]
    return EdgeState(containers, edge_settings(proj), "notes", revision, "a")


def run(monkeypatch: pytest.MonkeyPatch, proj: Project, fake: FakeEdge, st: EdgeState) -> float | None:
    monkeypatch.setattr(edge_upgrade, "edge_docker", lambda engine, files=None: fake)
    monkeypatch.setattr(edge_upgrade, "edge_state", lambda edge: st)
    monkeypatch.setattr("composekit.engine.edge._routes_container", lambda edge: ROUTES.name)
    said: list[str] = []
    took = edge_upgrade.upgrade_edge(proj, None, Deadline(30), said.append, sleep=lambda s: None)
    fake.calls += [f"said: {s}" for s in said]
    return took


def test_upgrade_reason(tmp_path: Path) -> None:
    proj = project(tmp_path)
    assert edge_upgrade.upgrade_reason(proj, state(proj, edge_revision(proj))) is None
    assert edge_upgrade.upgrade_reason(proj, state(proj, "0123")) == (
        f"its Traefik's definition changed (revision 0123 -> {edge_revision(proj)})"
    )
    assert edge_upgrade.upgrade_reason(proj, state(proj, None, holder=False)) == (
        "it predates the holder layout (its Traefik publishes the ports itself)"
    )


def test_an_edge_up_to_date_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path)
    fake = FakeEdge()
    assert run(monkeypatch, proj, fake, state(proj, edge_revision(proj))) is None
    assert fake.calls == []


def test_handover_starts_the_new_traefik_before_draining_and_stopping_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(tmp_path, images={"traefik": "traefik:v3.8"})
    fake = FakeEdge()
    took = run(monkeypatch, proj, fake, state(proj, "0123"))
    assert took is not None
    assert [c for c in fake.calls if not c.startswith("said")] == [
        "edge file draining nothing",
        "steer to listener 0",  # the old one takes every new connection while the new one starts
        "start_beside traefik=2",
        "steer to listener 1",  # healthy: the new one takes them
        "edge file draining ['_drain-a']",
        "stop_and_remove composekit-edge-traefik-1",
        "steer to listener 0",
        "edge file draining nothing",
    ]
    assert [c.name for c in fake.running] == [HOLDER.name, ROUTES.name, "composekit-edge-traefik-2"]


def test_a_new_traefik_that_never_turns_healthy_is_removed_and_the_old_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(tmp_path)
    fake = FakeEdge()

    def start_broken(service: str, count: int, on_line: Any = None) -> None:
        fake.calls.append(f"start_beside {service}={count}")
        fake.running.append(
            ContainerInfo("t2", "composekit-edge-traefik-2", "traefik", "exited", None, 1, 0, None, None, None, "img")
        )

    fake.start_beside = start_broken  # type: ignore[method-assign]
    with pytest.raises(UserError) as caught:
        run(monkeypatch, proj, fake, state(proj, "0123"))
    assert "the shared edge's new Traefik did not turn healthy (composekit-edge-traefik-2 exited (exit code 1))" in (
        str(caught.value)
    )
    assert "level=error msg=boom" in str(caught.value)
    assert fake.calls[-1] == "remove_now composekit-edge-traefik-2"
    assert OLD in fake.running
    assert not any(c.startswith("stop_and_remove") for c in fake.calls)


def test_the_ports_cannot_change_on_a_running_edge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, ports={"http": 8080, "https": 443})
    st = state(proj, "0123")
    assert st.settings is not None
    st.settings["ports/http"] = "80"
    fake = FakeEdge()
    with pytest.raises(UserError) as caught:
        run(monkeypatch, proj, fake, st)
    assert str(caught.value) == (
        "the shared edge publishes ports/http 80, and app notes has 8080: the ports are the holder's, which an "
        "upgrade never restarts. Fix: use the edge's ports in composekit.yaml, or `composekit edge down` (the sites "
        "are unanswered until the next `composekit up`) and then `composekit edge up`. Nothing was changed."
    )
    assert fake.calls == []
