"""A poller with a deadline and a bounded backoff, whose timeout says what it last saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Poll", "poll_until"]

T = TypeVar("T")


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
