"""The deploy lock, held on the engine: a never-started container named after the stack. The engine creates
a name once, atomically, so two deploys of one stack (from one machine or two) exclude each other.

A deploy that dies without releasing it (killed, or its SSH connection to the engine lost) leaves the lock behind.
The lock records where its holder runs: on Linux, the kernel's boot id, the PID namespace and the host name, with
the holder's PID and its start time. A later deploy from that same place, which can see that the holder's
process is gone, removes the lock itself and says so. Anywhere else (another machine, a container with its own
PID namespace, or a system without /proc) it cannot tell, and it refuses until --break-lock.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config.project import Project
from ..errors import DockerError, LockedError
from .docker import Docker
from .wait import Progress

__all__ = [
    "HOLDER_LABEL",
    "PLACE_LABEL",
    "PROCESS_LABEL",
    "SINCE_LABEL",
    "LockSpec",
    "deploy_lock",
    "hold_lock",
    "lock_name",
    "take_lock",
]

HOLDER_LABEL = "composekit.lock.holder"
SINCE_LABEL = "composekit.lock.since"
PLACE_LABEL = "composekit.lock.place"  # where the holder runs: a hash of boot id, PID namespace and host name
PROCESS_LABEL = "composekit.lock.process"  # "<pid> <start time in clock ticks after boot>"


def _place(proc: Path) -> str | None:
    """Where this process runs, as far as its PIDs mean anything: None without /proc (not Linux)."""
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
        namespace = os.readlink(proc / "self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{boot}\0{namespace}\0{socket.gethostname()}".encode()).hexdigest()[:24]


def _started(proc: Path, pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat), None when there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # after the command, which may hold spaces; fields 3.. follow


def _died_here(labels: dict[str, str], proc: Path) -> bool:
    """True only when the lock's holder ran where this process runs and its process is gone (or its PID now
    belongs to a process started later)."""
    place = _place(proc)
    if place is None or labels.get(PLACE_LABEL) != place:
        return False
    pid, _, started = labels.get(PROCESS_LABEL, "").partition(" ")
    if not pid.isdigit() or not started:
        return False
    return _started(proc, int(pid)) != started


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
    report: Progress = lambda _: None,
    proc: Path = Path("/proc"),
) -> Iterator[None]:
    """Hold the stack's deploy lock for the duration; ``break_lock`` first removes a lock left by a deploy
    that died (its holder and age are reported). A lock whose holder ran here and is gone is removed without it."""
    name = lock_name(project)

    def refused(held: dict[str, str]) -> str:
        return (
            f"another deploy of {project.config.name} holds the deploy lock (container {name}) since "
            f"{held.get(SINCE_LABEL, '?')}: {held.get(HOLDER_LABEL, '?')}. Wait for it to finish; if that deploy "
            "died (its process is gone), run again with --break-lock"
        )

    lock = LockSpec(name, project.config.images.python, project.config.name, "deploy lock", refused)
    with hold_lock(lock, docker, command, break_lock=break_lock, now=now, report=report, proc=proc):
        yield


@dataclass(frozen=True)
class LockSpec:
    """A lock container: its name, the image it is created from (never started), the value of its
    composekit.lock label, what it is called in messages, and the error when another holds it (from its labels)."""

    name: str
    image: str
    owner: str
    what: str
    refused: Callable[[dict[str, str]], str]


def take_lock(
    lock: LockSpec,
    docker: Docker,
    command: str,
    *,
    break_lock: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    report: Progress = lambda _: None,
    proc: Path = Path("/proc"),
) -> str:
    """Create the lock container ``lock`` (its ID), removing first a lock whose holder ran here and is gone (or any,
    with ``break_lock``); LockedError with ``lock.refused`` when another holds it."""
    name = lock.name
    if break_lock:
        labels = docker.lock_labels(name)
        if labels is not None:
            report(
                f"breaking the {lock.what} held by {labels.get(HOLDER_LABEL, '?')} since {labels.get(SINCE_LABEL, '?')}"
            )
            docker.remove_lock(name)  # whoever holds it now
    labels = {
        HOLDER_LABEL: f"{_holder()} ({command})",
        SINCE_LABEL: now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "composekit.lock": lock.owner,
    }
    place, started = _place(proc), _started(proc, os.getpid())
    if place is not None and started is not None:
        labels[PLACE_LABEL] = place
        labels[PROCESS_LABEL] = f"{os.getpid()} {started}"
    created = docker.create_lock(name, lock.image, labels)  # this holder's lock: its ID
    held: dict[str, str] = {}
    if not created:
        stale = docker.lock_id(name)
        held = docker.container_labels(stale) if stale else {}
        if stale and _died_here(held, proc):
            report(
                f"removing the {lock.what} left by {held.get(HOLDER_LABEL, '?')} since {held.get(SINCE_LABEL, '?')}: "
                "that deploy ran on this machine and its process is gone"
            )
            # By ID: should another deploy have replaced the stale lock meanwhile, its lock stays.
            try:
                docker.remove_now(stale)
            except DockerError:
                if docker.lock_id(name) == stale:
                    raise
                # another deploy removed it first; the create below tells who holds the lock now
            created = docker.create_lock(name, lock.image, labels)
            held = {} if created else docker.lock_labels(name) or {}
    if not created:
        raise LockedError(lock.refused(held))
    return created


@contextmanager
def hold_lock(
    lock: LockSpec,
    docker: Docker,
    command: str,
    *,
    break_lock: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    report: Progress = lambda _: None,
    proc: Path = Path("/proc"),
    wait: float = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold ``lock`` for the duration (take_lock), released after, by its ID. While another holds it, try again
    every second for up to ``wait`` seconds (said once through ``report``); then its LockedError, with the wait."""
    started, said = clock(), False
    while True:
        try:
            created = take_lock(lock, docker, command, break_lock=break_lock, now=now, report=report, proc=proc)
            break
        except LockedError as exc:
            waited = clock() - started
            if waited >= wait:
                if not wait:
                    raise
                raise LockedError(f"{exc} (waited {waited:.0f} s for it)") from None
            if not said:
                report(f"waiting up to {wait:.0f} s: {exc}")
                said = True
            sleep(min(1.0, wait - waited))
    try:
        yield
    except BaseException:
        _release(docker, lock, created, report, failing=True)  # the deploy's own error stays the error
        raise
    _release(docker, lock, created, report, failing=False)


def _release(docker: Docker, lock: LockSpec, created: str, report: Progress, *, failing: bool) -> None:
    """Remove this deploy's lock by its container ID: after a --break-lock, the lock of the deploy that broke it
    has another ID and is left to it. While the deploy is failing, a removal that fails is only reported: the
    deploy's own error is the one to read."""
    name = lock.name
    try:
        if not docker.remove_lock(created):
            report(
                f"note: the {lock.what} {name} this deploy held was removed meanwhile (--break-lock by another "
                "deploy?); a lock taken since is left to its holder"
            )
    except DockerError as exc:
        if not failing:
            raise
        report(
            f"note: the {lock.what} {name} could not be removed ({exc.summary}); the next deploy from this machine "
            "removes it by itself, from elsewhere run it with --break-lock"
        )
