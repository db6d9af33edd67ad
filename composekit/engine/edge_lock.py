"""The shared edge's lock: one composekit command at a time creates, starts or changes the edge on an engine (two
first `up`s of apps with edge: shared would otherwise race to create it, or to move certificates into it). A lock
container as the deploy lock is (engine/lock.py), named for the edge; a second command waits for it, bounded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..config.project import Project
from ..render.edge import EDGE_PROJECT
from .docker import Docker
from .lock import HOLDER_LABEL, SINCE_LABEL, LockSpec, hold_lock
from .wait import Progress

__all__ = ["EDGE_LOCK", "EDGE_LOCK_WAIT", "edge_lock"]

EDGE_LOCK = f"{EDGE_PROJECT}-lock"
# Creating the edge or moving an app onto it takes seconds to a minute (the image, the health wait).
EDGE_LOCK_WAIT = 180.0


def _refused(held: dict[str, str]) -> str:
    return (
        f"another composekit command is changing the shared edge ({EDGE_PROJECT}) on this engine: it holds the edge "
        f"lock (container {EDGE_LOCK}) since {held.get(SINCE_LABEL, '?')}: {held.get(HOLDER_LABEL, '?')}. Nothing "
        "was changed. Fix: run again once it has finished; if that command died (its process is gone), remove the "
        f"lock with `docker rm {EDGE_LOCK}` on the engine"
    )


@contextmanager
def edge_lock(
    project: Project,
    docker: Docker,
    command: str,
    *,
    wait: float = EDGE_LOCK_WAIT,
    report: Progress = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the edge lock while the edge is created, started or changed; wait up to ``wait`` seconds for another
    holder, then refuse (LockedError naming the holder)."""
    lock = LockSpec(EDGE_LOCK, project.config.images.python, EDGE_PROJECT, "edge lock", _refused)
    with hold_lock(lock, docker, command, report=report, wait=wait, clock=clock, sleep=sleep):
        yield
