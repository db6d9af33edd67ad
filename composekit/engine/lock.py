"""The deploy lock, held on the engine: a never-started container named after the stack. The engine creates
a name once, atomically, so two deploys of one stack (from one machine or two) exclude each other."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from ..config.project import Project
from ..errors import LockedError
from .docker import Docker

__all__ = ["HOLDER_LABEL", "SINCE_LABEL", "deploy_lock", "lock_name"]

HOLDER_LABEL = "composekit.lock.holder"
SINCE_LABEL = "composekit.lock.since"


def lock_name(project: Project) -> str:
    return f"{project.config.name}-deploy-lock"


def _holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


@contextmanager
def deploy_lock(
    project: Project,
    docker: Docker,
    command: str,
    *,
    break_lock: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    report: Callable[[str], None] = lambda _: None,
) -> Iterator[None]:
    """Hold the stack's deploy lock for the duration; ``break_lock`` first removes a lock left by a deploy
    that died (its holder and age are reported)."""
    name = lock_name(project)
    if break_lock:
        labels = docker.lock_labels(name)
        if labels is not None:
            report(
                f"breaking the deploy lock held by {labels.get(HOLDER_LABEL, '?')} since {labels.get(SINCE_LABEL, '?')}"
            )
            docker.remove_lock(name)
    labels = {
        HOLDER_LABEL: f"{_holder()} ({command})",
        SINCE_LABEL: now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "composekit.lock": project.config.name,
    }
    if not docker.create_lock(name, project.config.images.python, labels):
        held = docker.lock_labels(name) or {}
        raise LockedError(
            f"another deploy of {project.config.name} holds the deploy lock (container {name}) since "
            f"{held.get(SINCE_LABEL, '?')}: {held.get(HOLDER_LABEL, '?')}. Wait for it to finish; if that deploy "
            "died (its process is gone), run again with --break-lock"
        )
    try:
        yield
    finally:
        docker.remove_lock(name)
