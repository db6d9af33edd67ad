"""Waiting for a service to converge after a deploy: Swarm's rolling update completed (UpdateStatus) and every
desired task runs, healthy; a rollback, a pause or a crash-looping slot is an error naming what Swarm said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import HealthTimeoutError
from ..docker import Docker
from ..wait import Deadline, Poll
from .failures import describe_task, image_fix, indent, node_names, service_logs
from .parse import FAILED_STATES, ServiceInfo, TaskInfo, parse_service, parse_task, parse_time

__all__ = ["wait_converged"]

# UpdateStatus states that mean Swarm did not keep the new version (failure_action rollback or pause).
ROLLED_BACK = ("rollback_started", "rollback_completed", "rollback_paused", "paused")
# A slot whose tasks failed this often since the deploy is crash-looping: no point waiting for the deadline.
FAILURES_PER_SLOT = 3


def _failed_since(tasks: list[TaskInfo], since: str) -> list[TaskInfo]:
    start = parse_time(since)
    return [
        t for t in tasks if t.state in FAILED_STATES and (start is None or (parse_time(t.created_at) or start) >= start)
    ]


def wait_converged(
    docker: Docker, service: str, before: Mapping[str, Any] | None, deadline: Deadline, what: str = ""
) -> ServiceInfo:
    """Wait until ``service`` has converged: when its TaskTemplate changed since ``before`` (its inspect JSON
    ahead of the deploy), Swarm's rolling update started and completed; then every desired task runs (healthy,
    see parse.py) and their number is the replica count. Swarm rolling the update back (or pausing it) is
    an error naming UpdateStatus.Message and the failed tasks; so is a slot that keeps failing."""
    what = what or service
    started = deadline.clock()
    previous = parse_service(before) if before is not None else None
    expect_update = previous is not None
    since = ""

    def observe() -> Poll[tuple[ServiceInfo | None, list[TaskInfo]]]:
        nonlocal since
        raw = docker.service_inspect(service)
        if raw is None:
            return Poll((None, []), False, True, f"service {service} does not exist")
        svc = parse_service(raw)
        since = since or (previous.updated_at if previous is not None else svc.created_at)
        changed = expect_update and previous is not None and svc.template != previous.template
        old_start = previous.update.started_at if previous is not None and previous.update else ""
        u = svc.update
        new_update = u is not None and u.started_at != old_start
        if u is not None and new_update and u.state in ROLLED_BACK:
            return Poll((svc, []), False, True, f"UpdateStatus {u.state}: {u.message}")
        tasks = [parse_task(t) for t in docker.service_tasks(service)]
        if changed and not new_update:
            return Poll((svc, tasks), False, False, "Swarm has not started the update yet")
        if changed and u is not None and u.state != "completed":
            return Poll((svc, tasks), False, False, f"UpdateStatus {u.state}: {u.message}")
        failing = _failed_since(tasks, since)
        per_slot: dict[int | None, int] = {}
        for t in failing:
            per_slot[t.slot] = per_slot.get(t.slot, 0) + 1
        if per_slot and max(per_slot.values()) >= FAILURES_PER_SLOT:
            return Poll((svc, tasks), False, True, f"its tasks keep failing ({len(failing)} failed since the deploy)")
        current = [t for t in tasks if t.desired == "running"]
        running = [t for t in current if t.state == "running"]
        want = svc.replicas if svc.replicas is not None else len(current)
        if len(running) == want and len(current) == want:
            return Poll((svc, tasks), True, False, f"{len(running)}/{want} tasks running")
        states = ", ".join(sorted({t.state for t in current if t.state != "running"}))
        return Poll(
            (svc, tasks),
            False,
            False,
            f"{len(running)}/{want} tasks running" + (f" (others {states})" if states else ""),
        )

    seen, timed_out = deadline.poll(observe)
    svc, tasks = seen.value
    if seen.done and svc is not None:
        return svc
    head = (
        f"{deadline.ran_out(f'waiting for {what} to converge', started)}"
        if timed_out
        else f"{what} did not start: {seen.detail}"
    )
    nodes = node_names(docker)
    if not tasks:
        tasks = [parse_task(t) for t in docker.service_tasks(service)] if svc is not None else []
    # Swarm names the task that made it roll back; its logs say more than the whole service's.
    named = set(re.findall(r"\btask ([a-z0-9]{25})\b", seen.detail))
    failed = [t for t in tasks if t.id in named or t in _failed_since(tasks, since)]
    lines = [describe_task(t, nodes) for t in sorted(failed, key=lambda t: t.timestamp)[-5:]]
    failures = "\n".join(f"    {line}" for line in lines) or "    (no failed task)"
    culprit = next((t.id for t in failed if t.id in named), None)
    logs = service_logs(docker, culprit or service, deadline) if svc is not None else ""
    source = f"task {culprit[:12]} of {service}" if culprit else service
    no_image = image_fix(failed, nodes)
    if seen.failed and seen.detail.startswith("UpdateStatus"):
        fix = no_image or (
            "make the new version start and pass its healthcheck (`composekit logs app`), then run `composekit up` "
            "again"
        )
        raise HealthTimeoutError(
            f"Swarm rolled back the new version of {what}: {seen.detail}. The previous version is serving again.\n"
            f"Failed tasks:\n{failures}\nLast log lines of {source}:\n{indent(logs)}\nfix: {fix}"
        )
    fix = no_image or "check that the service starts and passes its healthcheck (`composekit status` shows its tasks)"
    raise HealthTimeoutError(
        f"{head}. Last status: {seen.detail}\nFailed tasks:\n{failures}\n"
        f"Last log lines of {source}:\n{indent(logs)}\nfix: {fix}; volumes are kept, nothing was deleted"
    )
