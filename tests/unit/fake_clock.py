"""A Deadline on a fake clock: its waits advance the clock instead of sleeping, so a test of a poll loop takes no
real time and sees the same sequence of observations as with time.monotonic and time.sleep."""

from __future__ import annotations

from composekit.engine.wait import Deadline


def fake_deadline(timeout: float) -> Deadline:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return Deadline(timeout, clock=lambda: now[0], sleep=sleep)
