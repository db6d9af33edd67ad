"""Swarm's raw JSON (`docker info`'s Swarm part, `docker node inspect`, `docker service inspect`, `docker inspect
--type task`) parsed into the dataclasses the rest of engine/swarm/ decides on. Pure: no engine here;
tests/unit/test_swarm_recorded.py parses JSON recorded from a real Swarm (tests/data/swarm).

A task's health: Swarm keeps a task whose container has a healthcheck in state ``starting`` until the container
is healthy, and fails it when the container turns unhealthy, so ``running`` means healthy (or no healthcheck).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "FAILED_STATES",
    "NodeInfo",
    "ServiceInfo",
    "SwarmState",
    "TaskInfo",
    "UpdateState",
    "parse_node",
    "parse_service",
    "parse_task",
    "parse_time",
    "swarm_state",
]

FAILED_STATES = ("failed", "rejected", "orphaned")


def parse_time(text: str | None) -> datetime | None:
    """Swarm's RFC 3339 time with nanoseconds -> datetime (microseconds); None for none or the zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    digits = "".join(c for c in rest if c.isdigit())[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{head}.{digits}+00:00")


@dataclass(frozen=True)
class SwarmState:
    """The Swarm part of `docker info` of the engine composekit talks to."""

    state: str  # inactive | pending | active | error | locked
    manager: bool  # ControlAvailable: this engine is a manager
    node_id: str
    nodes: int
    managers: int
    error: str

    @property
    def active(self) -> bool:
        return self.state == "active"


def swarm_state(info: Mapping[str, Any]) -> SwarmState:
    swarm = info.get("Swarm") or {}
    return SwarmState(
        state=str(swarm.get("LocalNodeState") or "inactive"),
        manager=bool(swarm.get("ControlAvailable")),
        node_id=str(swarm.get("NodeID") or ""),
        nodes=int(swarm.get("Nodes") or 0),
        managers=int(swarm.get("Managers") or 0),
        error=str(swarm.get("Error") or ""),
    )


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    role: str  # manager | worker
    availability: str  # active | pause | drain
    state: str  # ready | down | unknown | disconnected
    address: str
    leader: bool
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def schedulable(self) -> bool:
        return self.state == "ready" and self.availability == "active"


def parse_node(raw: Mapping[str, Any]) -> NodeInfo:
    spec = raw.get("Spec") or {}
    status = raw.get("Status") or {}
    return NodeInfo(
        id=str(raw["ID"]),
        hostname=str((raw.get("Description") or {}).get("Hostname") or raw["ID"][:12]),
        role=str(spec.get("Role") or "worker"),
        availability=str(spec.get("Availability") or "active"),
        state=str(status.get("State") or "unknown"),
        address=str(status.get("Addr") or ""),
        leader=bool((raw.get("ManagerStatus") or {}).get("Leader")),
        labels=dict(spec.get("Labels") or {}),
    )


@dataclass(frozen=True)
class UpdateState:
    """A service's UpdateStatus: Swarm's account of its last rolling update."""

    state: str  # updating | paused | completed | rollback_started | rollback_paused | rollback_completed
    message: str
    started_at: str


@dataclass(frozen=True)
class ServiceInfo:
    id: str
    name: str
    mode: str  # replicated | global | replicated-job | global-job
    replicas: int | None  # replicated services only
    image: str
    update: UpdateState | None
    healthcheck: bool
    created_at: str
    updated_at: str
    template: str  # the TaskTemplate as canonical JSON: it changes exactly when Swarm must replace the tasks


def parse_service(raw: Mapping[str, Any]) -> ServiceInfo:
    spec = raw.get("Spec") or {}
    mode_spec = spec.get("Mode") or {}
    mode = next(iter(mode_spec), "replicated")
    mode = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job"}.get(mode, mode.lower())
    replicas = (mode_spec.get("Replicated") or {}).get("Replicas") if mode == "replicated" else None
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    update = raw.get("UpdateStatus")
    test = (container.get("Healthcheck") or {}).get("Test") or []
    return ServiceInfo(
        id=str(raw["ID"]),
        name=str(spec.get("Name") or raw["ID"]),
        mode=mode,
        replicas=int(replicas) if replicas is not None else None,
        image=str(container.get("Image") or "").split("@", 1)[0],
        update=UpdateState(
            str(update.get("State") or ""),
            str(update.get("Message") or ""),
            str(update.get("StartedAt") or ""),
        )
        if update
        else None,
        healthcheck=bool(test) and test[0] != "NONE",
        created_at=str(raw.get("CreatedAt") or ""),
        updated_at=str(raw.get("UpdatedAt") or ""),
        template=json.dumps(template, sort_keys=True),
    )


@dataclass(frozen=True)
class TaskInfo:
    id: str
    slot: int | None
    node_id: str
    desired: str  # running | shutdown | complete | ...
    state: str  # new ... starting | running | complete | failed | shutdown | rejected | ...
    message: str
    error: str
    exit_code: int | None
    timestamp: str  # of the last state change
    created_at: str
    container_id: str
    image: str


def parse_task(raw: Mapping[str, Any]) -> TaskInfo:
    status = raw.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    spec = (raw.get("Spec") or {}).get("ContainerSpec") or {}
    slot = raw.get("Slot")
    return TaskInfo(
        id=str(raw["ID"]),
        slot=int(slot) if slot else None,
        node_id=str(raw.get("NodeID") or ""),
        desired=str(raw.get("DesiredState") or ""),
        state=str(status.get("State") or ""),
        message=str(status.get("Message") or ""),
        error=str(status.get("Err") or ""),
        exit_code=container.get("ExitCode") if container.get("ContainerID") else None,
        timestamp=str(status.get("Timestamp") or ""),
        created_at=str(raw.get("CreatedAt") or ""),
        container_id=str(container.get("ContainerID") or ""),
        image=str(spec.get("Image") or "").split("@", 1)[0],
    )
