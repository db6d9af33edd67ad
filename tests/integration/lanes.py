"""Lanes of the parallel integration tier: which lane a module runs on, the lock files that give one module at a
time a lane, and the order and xdist work units the modules are handed out in. No Docker and no fixtures here:
conftest.py uses it, tests/unit/test_lanes.py tests it.

A lane is a set of host ports (lane N: 80+1000N/443+1000N), the Pebble that validates there and a lock file.
`scripts/test.sh` runs the tier with three pytest-xdist workers (`-n 3 --dist loadfile`), one per lane; a module's
tests stay on one worker, and each module holds a lane's lock from its first test to its last. Four kinds of module:

- `exclusive` (it restarts dockerd): every lane's lock, taken in lane order, so nothing runs beside it; lane 0.
- `swarm` (marked `exclusive` and `swarm`: it needs the engine in the two-node test swarm, and putting the engine in
  a swarm and taking it out again disturbs Docker's embedded DNS for other stacks' containers: CI saw `failed to
  resolve host 'db'` and Traefik's 502s in lane 1 at those moments): as `exclusive`, after every `exclusive` module.
  The exclusive and swarm modules form one xdist work unit; its worker keeps every lane's lock from the first of them
  to the end of its session, and the swarm (started once, by the first swarm module) is left only then: one swarm
  init and leave for the whole tier.
- `lane0` (the shared edge, one per engine, or assertions that name ports 80/443): lane 0's lock only, so the other
  lane keeps working beside it. The lane0 modules form one xdist
  work unit: one worker runs them one after the other instead of both workers waiting for lane 0.
- any other: whichever lane is free (the highest first: lane 0 is the one the pinned modules and other pytest runs
  on this machine wait for); pinned when COMPOSEKIT_TEST_LANE names a lane or the process is not an xdist worker
  (then lane 0, as a plain `pytest` run always was).

No deadlock: only an exclusive or swarm module waits for a lock while it holds one, and it takes them in lane order;
its worker ends its session (releasing them) once it has run its modules.
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

Kind = Literal["exclusive", "swarm", "lane0", "any"]
LANE0_GROUP = "lane0"  # the xdist work unit of every lane0 module
EXCLUSIVE_GROUP = "exclusive"  # the xdist work unit of every exclusive and swarm module
ALONE: tuple[Kind, ...] = ("exclusive", "swarm")  # the kinds that hold every lane

# Seconds each module ran (lock waits left out), for the order the workers take them in: a wrong or missing figure
# costs balance between the lanes, nothing else (a module not listed counts 20 s a test). From the summary of modules
# of a fresh-clone CI run of 2026-12-03 (two lanes; only the `any` modules are ordered by it); scripts/test.sh's
# summary of modules prints fresh figures.
MODULE_SECONDS: dict[str, float] = {
    "test_remote_companions.py": 262,
    "test_schedules.py": 259,
    "test_backup.py": 239,
    "test_redeploy.py": 184,
    "test_companions.py": 173,
    "test_backup_schedule.py": 138,
    "test_real_repos.py": 100,
    "test_secrets_env.py": 76,
    "test_remote.py": 76,
    "test_init.py": 73,
    "test_smoke.py": 70,
    "test_migration_state.py": 65,
    "test_templates.py": 58,
    "test_backup_s3.py": 53,
    "test_stack.py": 52,
    "test_faults.py": 36,
    "test_failures.py": 29,
    "test_hardening.py": 21,
    "test_volume_owner_env_workers.py": 20,
    "test_plain_compose.py": 19,
    "test_proxy.py": 16,
    "test_readonly_commands.py": 9,
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


LANES = (Lane(0), Lane(1), Lane(2))


def kind_of(marks: set[str]) -> Kind:
    """A module's kind from the names of its marks."""
    if "exclusive" in marks:
        return "swarm" if "swarm" in marks else "exclusive"
    return "lane0" if "lane0" in marks else "any"


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
    """The work unit a module belongs to (tests/integration/conftest.py's xdist scheduler): its own, the one group of
    every lane0 module, or the one group of every exclusive and swarm module (one worker runs them one after the
    other, holding every lane from the first to the end of its session: the engine stays in the test swarm from the
    first swarm module to the end, so no other module may start between two of them)."""
    if kind == "lane0":
        return LANE0_GROUP
    return EXCLUSIVE_GROUP if kind in ALONE else path


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
    if kind == "lane0":
        return (lanes[0],)
    return None if pinned is None else (pinned,)


@contextmanager
def hold(
    kind: Kind, pinned: Lane | None, lanes: Sequence[Lane] = LANES, poll: float = 0.25
) -> Iterator[tuple[Lane, tuple[Lane, ...], float]]:
    """Hold the lock(s) a module of ``kind`` needs, waiting for them as long as other modules (or other pytest runs
    on this machine) hold them; yields (the lane it runs on, every lane held, seconds waited). ``pinned``: the lane
    an `any` module must use (None: the first free one, the highest first)."""
    started = time.monotonic()
    wanted = _wanted(kind, pinned, lanes)
    with ExitStack() as held:
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
            for lane in wanted:
                fcntl.flock(held.enter_context(open(lane.lock_file, "w")), fcntl.LOCK_EX)  # released at close
        yield wanted[0], wanted, time.monotonic() - started


def schedule(
    modules: Sequence[tuple[str, Kind, int]], seconds: dict[str, float], per_test: float = 20.0
) -> list[tuple[str, str]]:
    """(module, xdist work unit) in the order the workers should take them, from (module, kind, number of tests): the
    lane0 group first (the longest chain of work that must run in one lane: one worker starts it while the other
    starts on the rest), then the rest, longest first, so the lanes end close together, then the exclusive modules,
    then the swarm modules (they wait until every lane is done with its last module; at the start they would race
    the lane0 group for lane 0 and, losing, leave the other lanes idle until that module ended; the swarm modules
    last, because the engine stays in the swarm from the first of them to the end). A module's expected length is
    ``seconds[module]`` (its last measured run), else ``per_test`` seconds for each of its tests."""

    def length(name: str, count: int) -> float:
        return seconds.get(name, per_test * count)

    exclusive = [(name, EXCLUSIVE_GROUP) for name, kind, _ in modules if kind == "exclusive"]
    swarm = [(name, EXCLUSIVE_GROUP) for name, kind, _ in modules if kind == "swarm"]
    lane0 = [(name, LANE0_GROUP) for name, kind, _ in modules if kind == "lane0"]
    rest = sorted(((name, count) for name, kind, count in modules if kind == "any"), key=lambda m: -length(*m))
    return [*lane0, *((name, name) for name, _ in rest), *exclusive, *swarm]
