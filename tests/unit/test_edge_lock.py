"""The shared edge's lock (engine/edge_lock.py): a second command waits for it, bounded, then refuses naming the
holder; it takes the lock as soon as the first releases it."""

from __future__ import annotations

from pathlib import Path

import pytest

from composekit.engine.edge_lock import EDGE_LOCK, edge_lock
from composekit.engine.lock import HOLDER_LABEL, SINCE_LABEL
from composekit.errors import LockedError

from .test_lock import Engine, project


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_second_command_waits_then_refuses_naming_the_holder(tmp_path: Path) -> None:
    engine, p, clock = Engine(), project(tmp_path), Clock()
    said: list[str] = []
    with edge_lock(p, engine, "up"):  # type: ignore[arg-type]
        engine.locks[EDGE_LOCK].update({HOLDER_LABEL: "ops@a pid 1 (up)", SINCE_LABEL: "2026-12-03T10:00:00Z"})
        with (
            pytest.raises(LockedError) as caught,
            edge_lock(p, engine, "up", wait=5, clock=clock, sleep=clock.sleep, report=said.append),  # type: ignore[arg-type]
        ):
            pass
    assert clock.sleeps == [1.0] * 5
    assert str(caught.value) == (
        "another composekit command is changing the shared edge (composekit-edge) on this engine: it holds the edge "
        "lock (container composekit-edge-lock) since 2026-12-03T10:00:00Z: ops@a pid 1 (up). Nothing was changed. "
        "Fix: run again once it has finished; if that command died (its process is gone), remove the lock with "
        "`docker rm composekit-edge-lock` on the engine (waited 5 s for it)"
    )
    assert len(said) == 1 and said[0].startswith("waiting up to 5 s: another composekit command")
    assert EDGE_LOCK not in engine.locks  # released by the first


def test_the_waiter_takes_the_lock_once_the_holder_releases_it(tmp_path: Path) -> None:
    engine, p, clock = Engine(), project(tmp_path), Clock()
    engine.create_lock(EDGE_LOCK, "img", {HOLDER_LABEL: "ops@a pid 1 (up)"})

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 3:
            engine.remove_lock(EDGE_LOCK)  # the first command finished

    with edge_lock(p, engine, "up", wait=60, clock=clock, sleep=sleep):  # type: ignore[arg-type]
        assert engine.locks[EDGE_LOCK][HOLDER_LABEL].endswith(" (up)")
        assert engine.locks[EDGE_LOCK]["composekit.lock"] == "composekit-edge"
    assert clock.now == 3 and EDGE_LOCK not in engine.locks
