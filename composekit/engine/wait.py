"""A poller with a deadline and a bounded backoff, whose timeout says what it last saw; the one Deadline of `up`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Deadline", "Poll", "Progress", "poll_until"]

T = TypeVar("T")
# What a long step says while it runs ("waiting for shop-app-2 ..."): the CLI prints it to stderr.
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Poll(Generic[T]):
    """One observation: ``done`` ends the wait successfully, ``failed`` ends it early with ``detail``."""

    value: T
    done: bool
    failed: bool = False
    detail: str = ""


def poll_until(
    observe: Callable[[], Poll[T]],
    timeout: float,
    *,
    first_delay: float = 0.25,
    max_delay: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Poll[T], bool]:
    """Observe until done, failed or out of time; returns the last observation and whether time ran out."""
    deadline = clock() + timeout
    delay = first_delay
    while True:
        seen = observe()
        if seen.done or seen.failed:
            return seen, False
        remaining = deadline - clock()
        if remaining <= 0:
            return seen, True
        sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)


class Deadline:
    """One --timeout for the whole `up`, build included: every wait gets only what is left of it."""

    def __init__(
        self, timeout: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.started = clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return max(0.0, self.timeout - self.elapsed())

    def poll(self, observe: Callable[[], Poll[T]]) -> tuple[Poll[T], bool]:
        return poll_until(observe, self.remaining(), clock=self.clock, sleep=self.sleep)

    def ran_out(self, step: str, step_started: float) -> str:
        """``step`` ran out of time: how long the whole `up` took and how much of it the step had."""
        return (
            f"`up` ran out of its --timeout of {self.timeout:g}s while {step} "
            f"(after {self.elapsed():.0f}s in total, {self.clock() - step_started:.0f}s of them in this step)"
        )
