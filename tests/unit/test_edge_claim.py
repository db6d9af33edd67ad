"""Claiming domains on the shared edge (engine/edge.py write_route, claim_domains; render/edge.py new_names) against a
fake edge: a routes file that adds a name is checked against every other app's file and written under the edge lock,
one that adds none takes no lock; a claim made by another app between this app's first look and the lock is seen
under the lock and refuses this one, naming both apps, with nothing written (the concurrent `up`s of issue 19 point 2;
the real race: tests/integration/test_edge.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.deploy import compose as deploy
from composekit.engine import edge
from composekit.engine.docker import ContainerInfo, Docker
from composekit.engine.edge_lock import EDGE_LOCK
from composekit.engine.wait import Deadline
from composekit.errors import UserError
from composekit.render.edge import claimed_names, new_names
from composekit.render.traefik import routes_file

SHARED = "shop.example.com"


def project(tmp_path: Path, name: str, domains: list[str], folder: str = "", **top: Any) -> Project:
    root = tmp_path / (folder or name)
    root.mkdir()
    (root / "requirements.txt").write_text("fastapi\n")
    config = {"name": name, "domain": domains, "edge": "shared", "app": {"module": "app.main:app"}, **top}
    (root / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((root / "composekit.yaml",))


def routes(p: Project, live: list[str] | None = None) -> str:
    return routes_file(p.config, "g0", live or [], live or [])


def container(name: str, service: str) -> ContainerInfo:
    return ContainerInfo(name, name, service, "running", None, None, 0, None, None, None, "img")


class FakeEdge:
    """The edge's routes container (every app's file, read and written by the scripts composekit runs in it), the
    lock container, and what happened, in order. ``on_lock`` runs when the edge lock is taken: another app's `up`
    that claimed meanwhile."""

    engine = None

    def __init__(self, files: dict[str, str], app: list[ContainerInfo] | None = None) -> None:
        self.files = dict(files)
        self.app = app or []
        self.locks: dict[str, dict[str, str]] = {}
        self.events: list[str] = []
        self.on_lock: Callable[[], None] = lambda: None
        self.connected: list[str] = []

    def containers(self) -> list[ContainerInfo]:
        return [container("composekit-edge-routes-1", "routes"), *self.app]

    def exec(self, name: str, argv: list[str]) -> str:
        script = argv[3]
        if "listdir" in script:
            self.events.append("read")
            return json.dumps(self.files)
        path, text = argv[4], argv[5]
        app = Path(path).name.removesuffix(".yml")
        self.events.append(f"write {app}")
        self.files[app] = text
        return ""

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        if name in self.locks:
            return None
        self.locks[name] = labels
        self.events.append("lock")
        self.on_lock()
        return name

    def lock_labels(self, name: str) -> dict[str, str] | None:
        return self.locks.get(name)

    def lock_id(self, name: str) -> str | None:
        return name if name in self.locks else None

    def container_labels(self, name: str) -> dict[str, str]:
        return self.locks[name]

    def remove_lock(self, name: str) -> bool:
        self.events.append("unlock")
        return self.locks.pop(name, None) is not None

    def container_networks(self, name: str) -> list[str]:
        return []


def as_docker(fake: FakeEdge) -> Docker:
    return cast(Docker, fake)


def refusal(winner: str, loser: str) -> str:
    return (
        f"domain: {SHARED} is routed by app {winner} on the shared edge, so app {loser} cannot claim it. Fix: remove "
        f"{SHARED} from this app's domain (or www), or take it off app {winner} first (`composekit down` of {winner}, "
        "or its own domain changed and `composekit up`). Nothing was changed."
    )


def test_new_names_are_the_names_a_file_routes_that_the_apps_present_file_does_not(tmp_path: Path) -> None:
    first = project(tmp_path, "notes", ["notes.example.com"], www="redirect_to_apex")
    grown = project(tmp_path, "notes", ["notes.example.com", SHARED], folder="grown")
    assert new_names(routes(first), None) == {"notes.example.com", "www.notes.example.com"}
    assert new_names(routes(first), routes(first, ["notes-app-1"])) == set()  # another generation, no new name
    assert new_names(routes(grown), routes(first)) == {SHARED}
    assert new_names(routes(first), routes(grown)) == {"www.notes.example.com"}
    assert new_names(routes(project(tmp_path, "notes", ["notes.example.com"], folder="fewer")), routes(grown)) == set()


def test_a_write_adding_no_name_takes_no_lock(tmp_path: Path) -> None:
    p = project(tmp_path, "notes", ["notes.example.com"])
    fake = FakeEdge({"notes": routes(p)})
    edge.write_route(p, as_docker(fake), routes(p, ["notes-app-2"]))
    assert fake.events == ["read", "write notes"]


def test_a_first_write_is_checked_and_written_under_the_edge_lock(tmp_path: Path) -> None:
    p = project(tmp_path, "notes", ["notes.example.com", SHARED])
    fake = FakeEdge({"blog": routes(project(tmp_path, "blog", ["blog.example.com"]))})
    edge.write_route(p, as_docker(fake), routes(p, ["notes-app-1"]))
    assert fake.events == ["read", "lock", "read", "write notes", "unlock"]
    assert EDGE_LOCK not in fake.locks


def test_a_claim_made_by_another_app_before_the_lock_refuses_this_one_naming_both(tmp_path: Path) -> None:
    """Both apps looked before either wrote (each saw no claim); the other took the lock first and wrote its file: this
    one sees it under the lock, is refused, and writes nothing."""
    mine, other = project(tmp_path, "notes", ["notes.example.com", SHARED]), project(tmp_path, "blog", [SHARED])
    fake = FakeEdge({})

    def other_claims_first() -> None:
        fake.files["blog"] = routes(other, ["blog-app-1"])

    fake.on_lock = other_claims_first
    with pytest.raises(UserError) as caught:
        edge.write_route(mine, as_docker(fake), routes(mine, ["notes-app-1"]))
    assert str(caught.value) == refusal("blog", "notes")
    assert fake.events == ["read", "lock", "read", "unlock"]
    assert "notes" not in fake.files and fake.locks == {}


def test_a_caller_holding_the_lock_claims_without_taking_it_again(tmp_path: Path) -> None:
    mine, other = project(tmp_path, "notes", [SHARED]), project(tmp_path, "blog", [SHARED])
    fake = FakeEdge({"blog": routes(other)})
    with pytest.raises(UserError, match="is routed by app blog"):
        edge.write_route(mine, as_docker(fake), routes(mine), held=True)
    assert fake.events == ["read"]
    fake.files.clear()
    edge.write_route(mine, as_docker(fake), routes(mine), held=True)
    assert fake.events == ["read", "read", "write notes"]


def test_a_first_up_claims_its_domains_routed_to_no_server_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = project(tmp_path, "notes", ["notes.example.com", SHARED])
    fake = FakeEdge({})
    monkeypatch.setattr(edge, "edge_docker", lambda engine, files=None: fake)
    said: list[str] = []
    edge.claim_domains(p, as_docker(fake), said.append)
    assert fake.events == ["read", "write notes"]  # the caller holds the edge lock
    doc = yaml.safe_load(fake.files["notes"])
    assert claimed_names(fake.files["notes"]) == {"notes.example.com", SHARED}
    assert doc["http"]["services"]["notes"]["loadBalancer"]["servers"] == []
    assert said == [f"claimed notes.example.com, {SHARED} on the shared edge for app notes"]
    edge.claim_domains(p, as_docker(fake), said.append)  # claimed: the next `up` writes nothing here
    assert fake.events == ["read", "write notes", "read"]


def test_a_domain_added_to_a_running_app_is_claimed_routed_to_its_serving_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = project(tmp_path, "notes", ["notes.example.com"])
    after = project(tmp_path, "notes", ["notes.example.com", SHARED], folder="after")
    fake = FakeEdge({"notes": routes(before, ["notes-app-1"])}, [container("notes-app-1", "app")])
    monkeypatch.setattr(edge, "edge_docker", lambda engine, files=None: fake)
    connected: list[str] = []
    monkeypatch.setattr(edge, "connect_app", lambda project, docker, report=None: connected.append("notes"))
    said: list[str] = []
    edge.claim_domains(after, as_docker(fake), said.append)
    servers = yaml.safe_load(fake.files["notes"])["http"]["services"]["notes"]["loadBalancer"]["servers"]
    assert servers == [{"url": "http://notes-app-1:8000"}]
    assert SHARED in claimed_names(fake.files["notes"]) and connected == ["notes"]
    assert said == [f"claimed {SHARED} on the shared edge for app notes"]


def test_a_refused_claim_writes_nothing_and_connects_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, other = project(tmp_path, "notes", ["notes.example.com", SHARED]), project(tmp_path, "blog", [SHARED])
    fake = FakeEdge({"blog": routes(other)}, [container("notes-app-1", "app")])
    monkeypatch.setattr(edge, "edge_docker", lambda engine, files=None: fake)
    monkeypatch.setattr(edge, "connect_app", lambda *a, **k: pytest.fail("connected a refused app"))
    with pytest.raises(UserError) as caught:
        edge.claim_domains(mine, as_docker(fake))
    assert str(caught.value) == refusal("blog", "notes")
    assert fake.events == ["read"] and "notes" not in fake.files


class Steps:
    """deploy._onto_edge's engine steps, recorded in order; ``running`` is what each look at the edge sees."""

    def __init__(self, running: list[bool], claim: bool) -> None:
        self.running = running
        self.claim = claim
        self.done: list[str] = []

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(edge, "edge_docker", lambda engine, files=None: None)
        monkeypatch.setattr(edge, "edge_state", lambda docker: cast(Any, self.look()))
        monkeypatch.setattr(edge, "claim_needed", lambda project, docker: self.claim)
        monkeypatch.setattr(edge, "ensure_edge", lambda *a: self.done.append("ensure_edge"))
        monkeypatch.setattr(edge, "claim_domains", lambda *a: self.done.append("claim_domains"))
        monkeypatch.setattr(deploy, "edge_lock", self.lock)

    def look(self) -> Any:
        class State:
            running = self.running.pop(0)

        return State()

    @contextmanager
    def lock(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        self.done.append("lock")
        try:
            yield
        finally:
            self.done.append("unlock")


def onto_edge(tmp_path: Path) -> None:
    p = project(tmp_path, "notes", [SHARED])
    deploy._onto_edge(p, cast(Docker, FakeEdge({})), None, Deadline(60), lambda _: None, None)


def test_an_up_claiming_nothing_on_a_running_edge_takes_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps([True], claim=False)
    steps.patch(monkeypatch)
    onto_edge(tmp_path)
    assert steps.done == []


def test_an_edge_removed_while_the_claim_waited_is_created_again_before_the_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`edge down` held the lock while this `up` waited for it, and removed the edge: the claim creates it first."""
    steps = Steps([True, False], claim=True)
    steps.patch(monkeypatch)
    onto_edge(tmp_path)
    assert steps.done == ["lock", "ensure_edge", "claim_domains", "unlock"]


def test_a_running_edge_is_claimed_on_without_being_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps([True, True], claim=True)
    steps.patch(monkeypatch)
    onto_edge(tmp_path)
    assert steps.done == ["lock", "claim_domains", "unlock"]


# a failed `up` gives back what it claimed ------------------------------------------------------------------------


def claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeEdge, p: Project) -> edge.Claim:
    monkeypatch.setattr(edge, "edge_docker", lambda engine, files=None: fake)

    def detach(project: Project, engine: Any, report: Any = None) -> None:
        fake.events.append(f"detach {project.config.name}")
        fake.files.pop(project.config.name)

    monkeypatch.setattr(edge, "detach_app", detach)
    claim = edge.claim_domains(p, as_docker(fake))
    assert claim is not None
    fake.events.clear()
    return claim


def test_a_failed_first_up_that_left_nothing_running_gives_its_names_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project(tmp_path, "notes", ["notes.example.com", SHARED])
    fake = FakeEdge({})
    claim = claimed(tmp_path, monkeypatch, fake, p)
    assert (claim.names, claim.before) == (("notes.example.com", SHARED), None)
    said: list[str] = []
    edge.give_back(p, as_docker(fake), claim, said.append)
    assert fake.events == ["lock", "read", "detach notes", "unlock"]
    assert "notes" not in fake.files  # another app may claim them now
    assert said[-1] == f"gave back notes.example.com, {SHARED} on the shared edge: the failed `up` routes none of them"


def test_a_failed_first_up_whose_app_runs_keeps_its_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = project(tmp_path, "notes", [SHARED])
    fake = FakeEdge({})
    claim = claimed(tmp_path, monkeypatch, fake, p)
    fake.app = [container("notes-app-1", "app")]
    said: list[str] = []
    edge.give_back(p, as_docker(fake), claim, said.append)
    assert fake.events == ["lock", "read", "unlock"] and "notes" in fake.files
    assert not any("gave back" in line for line in said)


def test_a_failed_up_that_added_a_name_puts_the_file_back_unless_a_switch_rewrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = project(tmp_path, "notes", ["notes.example.com"])
    after = project(tmp_path, "notes", ["notes.example.com", SHARED], folder="after")
    serving = routes(before, ["notes-app-1"])
    fake = FakeEdge({"notes": serving}, [container("notes-app-1", "app")])
    monkeypatch.setattr(edge, "connect_app", lambda *a, **k: None)
    claim = claimed(tmp_path, monkeypatch, fake, after)
    assert claim.names == (SHARED,)
    edge.give_back(after, as_docker(fake), claim)
    assert fake.files["notes"] == serving
    assert fake.events == ["lock", "read", "write notes", "unlock"]
    # Claimed again, then a switch wrote a generation of its own: that one stays.
    claim = claimed(tmp_path, monkeypatch, fake, after)
    fake.files["notes"] = switched = routes(after, ["notes-app-2"])
    edge.give_back(after, as_docker(fake), claim)
    assert fake.files["notes"] == switched
    assert fake.events == ["lock", "read", "unlock"]


def test_a_give_back_that_fails_is_a_warning_not_the_error_of_the_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project(tmp_path, "notes", [SHARED])

    def cannot(*args: Any) -> None:
        raise UserError("the edge lock is held by another command\nmore")

    monkeypatch.setattr(edge, "give_back", cannot)
    said: list[str] = []
    deploy._give_back(p, cast(Docker, FakeEdge({})), edge.Claim((SHARED,), "x", None), said.append)
    assert said == [
        f"warning: could not give back {SHARED} on the shared edge (the edge lock is held by another command); "
        "`composekit down` does"
    ]


def test_an_edge_another_up_created_meanwhile_with_other_settings_refuses_this_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first `up`s with different edge settings: both saw no edge before their builds; the one that waited for
    the lock finds the other's edge and is refused (before: it upgraded that edge to its own settings)."""
    steps = Steps([False, True], claim=True)
    steps.patch(monkeypatch)
    checked: list[str] = []

    def refuse(project: Project, state: Any) -> None:
        checked.append(project.config.name)
        raise UserError("acme/email is 'a@example.org' here but 'b@example.org' on the edge")

    monkeypatch.setattr(edge, "refuse_other_settings", refuse)
    with pytest.raises(UserError, match="on the edge"):
        onto_edge(tmp_path)
    assert checked == ["notes"]
    assert steps.done == ["lock", "unlock"]  # neither the edge nor the claim touched


def test_an_edge_another_up_created_meanwhile_with_the_same_settings_is_claimed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = Steps([False, True], claim=True)
    steps.patch(monkeypatch)
    monkeypatch.setattr(edge, "refuse_other_settings", lambda project, state: steps.done.append("settings agree"))
    onto_edge(tmp_path)
    assert steps.done == ["lock", "settings agree", "ensure_edge", "claim_domains", "unlock"]
