"""Lanes of the parallel integration tier: which lane a module runs on, the lock files that give one module at a
time a lane, and the order and xdist work units the modules are handed out in. No Docker and no fixtures here:
conftest.py uses it, tests/unit/test_lanes.py tests it.

A lane is a set of host ports (lane N: 80+1000N/443+1000N), the Pebble that validates there and a lock file.
`scripts/test.sh` runs the tier with four pytest-xdist workers (`-n 4 --dist loadfile`), one per lane; a module's
tests stay on one worker, and each module holds a lane's lock from its first test to its last. Four kinds of module:

- `exclusive` (it restarts dockerd): every lane's lock, taken in lane order, so nothing runs beside it; lane 0. The
  exclusive modules are one xdist work unit, run last; its worker keeps every lane's lock to the end of its session.
- `swarm` (marked `swarm`: it needs the engine in the two-node test swarm): lane 0's lock only, in the swarm
  work unit. Putting the engine in a swarm and taking it out again disturbs Docker's embedded DNS for other stacks'
  containers (CI saw `failed to resolve host 'db'` and Traefik's 502s in another lane at those moments), so the swarm
  is never started or left while another module runs: the xdist controller starts it before the workers start and
  leaves it after they end (conftest.py), with every lane's lock held; a swarm module that finds it down (a plain
  pytest run, or an exclusive module left it) starts it holding every lane's lock, and an exclusive module
  (test_engine: live-restore, which Swarm refuses) leaves it holding every lane's lock.
- `edge` (the shared edge, one per engine whatever the lane, or doctor's port checks, which would see it): the edge
  lock (one such module at a time on this machine, across pytest runs too), then whichever lane is free, as `any`.
  The edge modules form one xdist work unit: one worker runs them one after the other, beside the other lanes.
- any other: whichever lane is free (the highest first: lane 0 is the one the pinned modules and other pytest runs
  on this machine wait for); pinned when COMPOSEKIT_TEST_LANE names a lane or the process is not an xdist worker
  (then lane 0, as a plain `pytest` run always was).

No deadlock: only an exclusive module, a swarm module starting the swarm, or an edge module waits for a lock while it
holds one. The first two take lane locks in lane order (lane 0 first: the swarm module holds it already; the
exclusive one waits for it holding nothing) and never the edge lock; an edge module takes the edge lock holding
nothing, then a lane. The exclusive module's worker ends its session (releasing them) once it has run its modules.
"""

from __future__ import annotations

import ast
import fcntl
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Kind = Literal["exclusive", "swarm", "edge", "any"]
SWARM_GROUP = "swarm"  # the xdist work unit of every swarm module
EDGE_GROUP = "edge"  # the xdist work unit of every edge module
EXCLUSIVE_GROUP = "exclusive"  # the xdist work unit of every exclusive module
GROUPS: dict[Kind, str] = {"swarm": SWARM_GROUP, "edge": EDGE_GROUP, "exclusive": EXCLUSIVE_GROUP}
ALONE: tuple[Kind, ...] = ("exclusive",)  # the kinds that hold every lane
ON_LANE0: tuple[Kind, ...] = ("swarm",)  # the kinds that hold lane 0 only

# Seconds each module ran (lock waits left out), for the order the work units are handed out in (longest first): a
# wrong or missing figure costs balance between the lanes, nothing else (a module not listed counts 20 s a test). From
# the summary of modules of a fresh-clone CI run of 2026-12-04 (four lanes); scripts/test.sh's summary of modules
# prints fresh figures.
MODULE_SECONDS: dict[str, float] = {
    "test_swarm.py": 409,
    "test_schedules.py": 249,
    "test_remote_companions.py": 234,
    "test_backup.py": 230,
    "test_companions.py": 174,
    "test_edge.py": 169,
    "test_backup_schedule.py": 149,
    "test_redeploy.py": 131,
    "test_real_repos.py": 150,  # 120 before the own-Dockerfile deploy (~30 s alone)
    "test_secrets_swarm.py": 104,
    "test_secrets_env.py": 96,
    "test_remote.py": 92,
    "test_init.py": 80,
    "test_backup_s3.py": 72,
    "test_smoke.py": 70,
    "test_templates.py": 69,
    "test_migration_state.py": 67,
    "test_stack.py": 63,
    "test_faults.py": 41,
    "test_failures.py": 41,
    "test_engine.py": 36,
    "test_swarm_cluster.py": 31,
    "test_doctor.py": 30,
    "test_edge_remote.py": 30,
    "test_hardening.py": 28,
    "test_volume_owner_env_workers.py": 27,
    "test_plain_compose.py": 25,
    "test_edge_move.py": 25,
    "test_proxy.py": 23,
    "test_readonly_commands.py": 13,
}


@dataclass(frozen=True)
class Lane:
    """One lane of the parallel integration tier: the host ports its stacks publish, the Pebble that validates
    there (scripts/pebble.sh with PEBBLE_LANE) and the lock that lets one module at a time use them."""

    index: int
    lock_dir: str = "/tmp"

    @property
    def http_port(self) -> int:
        return 80 + 1000 * self.index

    @property
    def https_port(self) -> int:
        return 443 + 1000 * self.index

    @property
    def acme_port(self) -> int:
        return 14000 + self.index

    @property
    def lock_file(self) -> str:
        name = "composekit-integration.lock" if self.index == 0 else f"composekit-integration-lane{self.index}.lock"
        return f"{self.lock_dir}/{name}"


LANES = (Lane(0), Lane(1), Lane(2), Lane(3))


def edge_lock_file(lanes: Sequence[Lane] = LANES) -> str:
    """The lock of the engine's one shared edge: an edge module holds it from its first test to its last (so do the
    edge benchmarks), beside the lock of whichever lane it runs on."""
    return f"{lanes[0].lock_dir}/composekit-integration-edge.lock"


def kind_of(marks: set[str]) -> Kind:
    """A module's kind from the names of its marks."""
    if "swarm" in marks:
        return "swarm"
    if "exclusive" in marks:
        return "exclusive"
    return "edge" if "edge" in marks else "any"


def module_marks(source: Path) -> set[str]:
    """The names of the marks in a test module's `pytestmark` (`pytest.mark.NAME`), read from its source: the
    controller of an xdist run groups modules by them without importing (collecting) any."""
    marks: set[str] = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            for sub in ast.walk(value):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                    marks.add(sub.attr)
    return marks


def xdist_scope(path: str, kind: Kind) -> str:
    """The work unit a module belongs to (tests/integration/conftest.py's xdist scheduler): its own, or the one group
    of its kind: every swarm module (one worker runs them one after the other on lane 0, while the others use the
    other lanes), every edge module (one worker runs them one after the other, on any lane) or every exclusive module
    (one worker runs them last, holding every lane)."""
    return GROUPS.get(kind, path)


def _try_lock(lane: Lane) -> IO[str] | None:
    """The lane's lock file, locked, or None when another process (or open file) holds the lock."""
    handle = open(lane.lock_file, "w")  # noqa: SIM115 (closed by the caller, or here when the lock is taken)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _wanted(kind: Kind, pinned: Lane | None, lanes: Sequence[Lane]) -> tuple[Lane, ...] | None:
    """The lanes whose locks a module must wait for, in lane order; None: any one free lane will do."""
    if kind in ALONE:
        return tuple(lanes)
    if kind in ON_LANE0:
        return (lanes[0],)
    return None if pinned is None else (pinned,)


@contextmanager
def hold(
    kind: Kind, pinned: Lane | None, lanes: Sequence[Lane] = LANES, poll: float = 0.25
) -> Iterator[tuple[Lane, tuple[Lane, ...], float]]:
    """Hold the lock(s) a module of ``kind`` needs, waiting for them as long as other modules (or other pytest runs
    on this machine) hold them; yields (the lane it runs on, every lane held, seconds waited). ``pinned``: the lane
    an `any` or `edge` module must use (None: the first free one, the highest first)."""
    started = time.monotonic()
    wanted = _wanted(kind, pinned, lanes)
    with ExitStack() as held:
        if kind == "edge":  # the engine's one edge: its lock first, holding nothing, then a lane
            fcntl.flock(held.enter_context(open(edge_lock_file(lanes), "w")), fcntl.LOCK_EX)
        if wanted is None:
            while True:
                handle = next(filter(None, map(_try_lock, reversed(lanes))), None)
                if handle is not None:
                    break
                time.sleep(poll)
            held.enter_context(handle)
            lane = next(lane for lane in lanes if lane.lock_file == handle.name)
            wanted = (lane,)
        else:
            held.enter_context(hold_exactly(wanted))
        yield wanted[0], wanted, time.monotonic() - started


@contextmanager
def hold_exactly(lanes: Sequence[Lane]) -> Iterator[None]:
    """Hold the locks of ``lanes``, taken in the order given, waiting for each (a caller that holds lane 0 already
    passes the others: a second lock of a file this process holds through another open file would wait forever)."""
    with ExitStack() as held:
        for lane in lanes:
            fcntl.flock(held.enter_context(open(lane.lock_file, "w")), fcntl.LOCK_EX)  # released at close
        yield


def schedule(
    modules: Sequence[tuple[str, Kind, int]], seconds: dict[str, float], per_test: float = 20.0
) -> list[tuple[str, str]]:
    """(module, xdist work unit) in the order the workers should take them, from (module, kind, number of tests): the
    work units longest first (the swarm group and the edge group each as long as their modules together), so that the
    lanes end close together; the exclusive modules last (they wait until every lane is done with its last module; at
    the start they would take every lane, and the swarm modules need the swarm they leave). In a group the modules
    keep the order given. A module's expected length is ``seconds[module]`` (its last measured run), else
    ``per_test`` seconds for each of its tests."""

    def length(name: str, count: int) -> float:
        return seconds.get(name, per_test * count)

    units: dict[str, list[tuple[str, float]]] = {}
    for name, kind, count in modules:
        units.setdefault(xdist_scope(name, kind), []).append((name, length(name, count)))
    exclusive = units.pop(EXCLUSIVE_GROUP, [])
    ordered = sorted(units.items(), key=lambda unit: -sum(seconds for _, seconds in unit[1]))
    return [(name, unit) for unit, members in [*ordered, (EXCLUSIVE_GROUP, exclusive)] for name, _ in members]
