"""The integration tier's lanes (tests/integration/lanes.py): which locks a module takes, which lane a module that
may run anywhere gets, and the order and xdist work units the modules are handed out in. Real flock()s on files of a
temporary directory; no Docker."""

from __future__ import annotations

import fcntl
import importlib.util
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.lanes import (
    EDGE_GROUP,
    EXCLUSIVE_GROUP,
    LANES,
    SWARM_GROUP,
    Kind,
    Lane,
    edge_lock_file,
    hold,
    hold_exactly,
    kind_of,
    module_marks,
    schedule,
    xdist_scope,
)


@pytest.fixture
def lanes(tmp_path: Path) -> tuple[Lane, Lane]:
    return Lane(0, lock_dir=str(tmp_path)), Lane(1, lock_dir=str(tmp_path))


@contextmanager
def held_elsewhere(lane: Lane) -> Iterator[None]:
    """The lane's lock held through another open file description, as another pytest process would hold it."""
    with open(lane.lock_file, "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        yield


def is_free(lane: Lane) -> bool:
    with open(lane.lock_file, "w") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_lane_ports_and_lock_files() -> None:
    assert (Lane(0).http_port, Lane(0).https_port, Lane(0).acme_port) == (80, 443, 14000)
    assert (Lane(1).http_port, Lane(1).https_port, Lane(1).acme_port) == (1080, 1443, 14001)
    assert Lane(0).lock_file == "/tmp/composekit-integration.lock"
    assert Lane(1).lock_file == "/tmp/composekit-integration-lane1.lock"
    # scripts/test.sh runs one xdist worker per lane and starts each lane's Pebble
    ports = [(lane.http_port, lane.https_port, lane.acme_port) for lane in LANES[2:]]
    assert ports == [(2080, 2443, 14002), (3080, 3443, 14003)]
    test_sh = (Path(__file__).resolve().parents[2] / "scripts" / "test.sh").read_text()
    assert f"tests/integration -n {len(LANES)} " in test_sh
    assert all(f"PEBBLE_LANE={lane.index} bash scripts/pebble.sh start" in test_sh for lane in LANES[1:])


def test_kind_from_marks() -> None:
    assert kind_of({"integration", "exclusive"}) == "exclusive"
    assert kind_of({"integration", "swarm"}) == "swarm"
    assert kind_of({"integration", "exclusive", "swarm"}) == "swarm"
    assert kind_of({"integration", "edge"}) == "edge"
    assert kind_of({"integration"}) == "any"


def test_a_module_that_may_run_anywhere_takes_the_highest_free_lane(lanes: tuple[Lane, Lane]) -> None:
    with hold("any", None, lanes) as (lane, held, _):
        assert (lane, held) == (lanes[1], (lanes[1],))
        assert not is_free(lanes[1]) and is_free(lanes[0])
    assert is_free(lanes[1])


def test_it_takes_lane0_while_lane1_is_busy_instead_of_waiting(lanes: tuple[Lane, Lane]) -> None:
    with held_elsewhere(lanes[1]), hold("any", None, lanes) as (lane, held, waited):
        assert (lane, held) == (lanes[0], (lanes[0],))
        assert waited < 1


def test_it_waits_while_every_lane_is_busy_and_says_how_long(lanes: tuple[Lane, Lane]) -> None:
    with held_elsewhere(lanes[1]):
        other = open(lanes[0].lock_file, "w")  # noqa: SIM115 (closed by the thread)
        fcntl.flock(other, fcntl.LOCK_EX)
        threading.Timer(0.3, other.close).start()
        with hold("any", None, lanes, poll=0.05) as (lane, _, waited):
            assert lane == lanes[0]
            assert waited >= 0.15


def test_a_pinned_module_waits_for_its_own_lane(lanes: tuple[Lane, Lane]) -> None:
    other = open(lanes[1].lock_file, "w")  # noqa: SIM115 (closed by the thread)
    fcntl.flock(other, fcntl.LOCK_EX)
    threading.Timer(0.3, other.close).start()
    started = time.monotonic()
    with hold("any", lanes[1], lanes, poll=0.05) as (lane, held, _):
        assert (lane, held) == (lanes[1], (lanes[1],))
        assert time.monotonic() - started >= 0.15
        assert is_free(lanes[0])


def edge_lock_is_free(lanes: tuple[Lane, Lane]) -> bool:
    with open(edge_lock_file(lanes), "w") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_an_edge_module_holds_the_edge_lock_and_whichever_lane_is_free(lanes: tuple[Lane, Lane]) -> None:
    assert edge_lock_file(lanes) == f"{lanes[0].lock_dir}/composekit-integration-edge.lock"
    assert edge_lock_file() == "/tmp/composekit-integration-edge.lock"
    with held_elsewhere(lanes[1]), hold("edge", None, lanes) as (lane, held, _):
        assert (lane, held) == (lanes[0], (lanes[0],))
        assert not edge_lock_is_free(lanes) and not is_free(lanes[0])
    assert edge_lock_is_free(lanes) and is_free(lanes[0])
    with hold("edge", lanes[1], lanes) as (lane, held, _):  # pinned: its own lane
        assert (lane, held) == (lanes[1], (lanes[1],))
        assert is_free(lanes[0]) and not edge_lock_is_free(lanes)


def test_an_edge_module_waits_for_another_holding_the_edge_lock_and_takes_no_lane_meanwhile(
    lanes: tuple[Lane, Lane],
) -> None:
    """Another pytest run's edge module (the engine has one edge): waited for, holding no lane while it waits."""
    other = open(edge_lock_file(lanes), "w")  # noqa: SIM115 (closed by the timer)
    fcntl.flock(other, fcntl.LOCK_EX)
    lanes_free_while_waiting: list[bool] = []

    def check_then_release() -> None:
        lanes_free_while_waiting.append(is_free(lanes[0]) and is_free(lanes[1]))
        other.close()

    threading.Timer(0.3, check_then_release).start()
    with hold("edge", None, lanes, poll=0.05) as (lane, _, waited):
        assert lane == lanes[1]
        assert waited >= 0.15
    assert lanes_free_while_waiting == [True]


def test_an_exclusive_module_holds_every_lane(lanes: tuple[Lane, Lane]) -> None:
    with hold("exclusive", None, lanes) as (lane, held, _):
        assert (lane, held) == (lanes[0], lanes)
        assert not is_free(lanes[0]) and not is_free(lanes[1])
    assert is_free(lanes[0]) and is_free(lanes[1])


def test_a_swarm_module_holds_lane0_only_and_leaves_the_other_lanes_free(lanes: tuple[Lane, Lane]) -> None:
    """The engine is in the test swarm for the whole parallel tier: a swarm module runs beside the other lanes."""
    with hold("swarm", lanes[1], lanes) as (lane, held, _):
        assert (lane, held) == (lanes[0], (lanes[0],))
        assert not is_free(lanes[0]) and is_free(lanes[1])


def test_a_swarm_module_that_starts_the_swarm_takes_the_other_lanes_after_its_own(lanes: tuple[Lane, Lane]) -> None:
    """hold_exactly(the other lanes) beside lane 0's lock: it waits for a module on lane 1 to end, and does not wait
    on the lock its own process holds."""
    taken = threading.Event()

    def module_on_lane1() -> None:
        with held_elsewhere(lanes[1]):
            taken.set()
            time.sleep(0.2)

    other = threading.Thread(target=module_on_lane1)
    with hold("swarm", None, lanes):
        other.start()
        assert taken.wait(5)
        started = time.monotonic()
        with hold_exactly(lanes[1:]):
            assert time.monotonic() - started >= 0.1
            assert not is_free(lanes[1])
    other.join()
    assert is_free(lanes[0]) and is_free(lanes[1])


def test_schedule_the_work_units_longest_first_groups_as_long_as_their_modules_then_the_exclusive() -> None:
    modules: list[tuple[str, Kind, int]] = [
        ("a.py", "any", 10),  # 200 s by its count
        ("edge.py", "edge", 4),  # 80 s, + doctor.py's 60 s: the edge unit is 140 s
        ("b.py", "any", 2),  # measured: 300 s
        ("engine.py", "exclusive", 3),
        ("doctor.py", "edge", 3),
        ("c.py", "any", 1),
        ("s.py", "swarm", 4),  # measured: 250 s, + s2.py's 100 s: the swarm unit is 350 s
        ("s2.py", "swarm", 1),
    ]
    assert schedule(modules, {"b.py": 300.0, "s.py": 250.0, "s2.py": 100.0}) == [
        ("s.py", SWARM_GROUP),  # a group's modules in the order given
        ("s2.py", SWARM_GROUP),
        ("b.py", "b.py"),
        ("a.py", "a.py"),
        ("edge.py", EDGE_GROUP),
        ("doctor.py", EDGE_GROUP),
        ("c.py", "c.py"),
        ("engine.py", EXCLUSIVE_GROUP),  # last: it leaves the swarm (live-restore)
    ]


def test_the_marks_of_a_module_are_read_from_its_source_without_importing_it(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text(
        "import pytest\nimport not_installed_anywhere\n"
        "pytestmark = [pytest.mark.integration, pytest.mark.edge]\n"
        "def test_a() -> None:\n    x = pytest.mark.exclusive\n"
    )
    assert module_marks(module) == {"integration", "edge"}  # not the mark inside a test
    module.write_text("import pytest\npytestmark: object = pytest.mark.exclusive\n")
    assert module_marks(module) == {"exclusive"}
    module.write_text("def test_a() -> None:\n    pass\n")
    assert module_marks(module) == set()


def test_the_real_modules_kinds() -> None:
    here = Path(__file__).resolve().parents[1] / "integration"
    kinds = {path.name: kind_of(module_marks(path)) for path in here.glob("test_*.py")}
    assert {name for name, kind in kinds.items() if kind != "any"} == {
        "test_engine.py",
        "test_doctor.py",
        "test_edge.py",
        "test_edge_move.py",
        "test_edge_remote.py",
        "test_swarm.py",
        "test_swarm_cluster.py",
        "test_secrets_swarm.py",
    }
    assert kinds["test_engine.py"] == "exclusive"
    for name in ("test_swarm.py", "test_swarm_cluster.py", "test_secrets_swarm.py"):
        assert kinds[name] == "swarm", name
    for name in ("test_doctor.py", "test_edge.py", "test_edge_move.py", "test_edge_remote.py"):
        assert kinds[name] == "edge", name


def test_the_swarm_modules_are_one_xdist_work_unit_the_edge_modules_another_the_exclusive_ones_a_third() -> None:
    assert xdist_scope("tests/integration/test_edge.py", "edge") == EDGE_GROUP
    assert xdist_scope("tests/integration/test_swarm.py", "swarm") == SWARM_GROUP
    assert xdist_scope("tests/integration/test_engine.py", "exclusive") == EXCLUSIVE_GROUP
    assert xdist_scope("tests/integration/test_stack.py", "any") == "tests/integration/test_stack.py"


def test_the_edge_benchmarks_take_the_locks_an_edge_module_takes() -> None:
    """benchmarks/edge_lane.py (multi_app.py, https_hop.py) creates and removes the engine's one edge too."""
    source = Path(__file__).resolve().parents[2] / "benchmarks" / "edge_lane.py"
    spec = importlib.util.spec_from_file_location("edge_lane_under_test", source)
    assert spec is not None and spec.loader is not None
    edge_lane = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = edge_lane  # its dataclasses look their module up
    try:
        spec.loader.exec_module(edge_lane)
    finally:
        del sys.modules[spec.name]
    assert edge_lock_file() == edge_lane.EDGE_LOCK
    for lane in LANES:
        assert edge_lane.default_locks(lane.index) == [edge_lock_file(), lane.lock_file]
