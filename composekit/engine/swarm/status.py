"""What the manager reports: that composekit talks to a Swarm manager at all, the stack's services and tasks
(`composekit status`), and the stack's Traefik task on this engine's node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import UserError
from ..docker import ContainerInfo, Docker
from .failures import node_names
from .parse import ServiceInfo, SwarmState, TaskInfo, parse_service, parse_task, swarm_state

__all__ = [
    "SwarmServiceRow",
    "SwarmStatus",
    "SwarmTaskRow",
    "require_manager",
    "service_row",
    "swarm_status",
    "traefik_here",
]


def require_manager(docker: Docker) -> SwarmState:
    """The engine must be an active Swarm manager: only a manager deploys stacks and answers for services."""
    state = swarm_state(docker.engine_info())
    where = docker.engine.describe()
    if not state.active:
        raise UserError(
            f"mode: swarm deploys to a Swarm, but the engine {where} is not in one (Swarm: {state.state}"
            + (f", {state.error}" if state.error else "")
            + "). Fix: run `docker swarm init` on the server that is to be the manager (and `docker swarm join` "
            "on the others), or set mode: compose"
        )
    if not state.manager:
        raise UserError(
            f"mode: swarm deploys through a Swarm manager, but the engine {where} is a worker node. Fix: point "
            "composekit at a manager (--host, host: in composekit.yaml, DOCKER_HOST or a docker context); "
            "`docker node ls` on a manager lists them"
        )
    return state


@dataclass(frozen=True)
class SwarmTaskRow:
    task: str  # <service>.<slot>
    node: str
    state: str
    health: str | None  # starting | healthy | None (no healthcheck, or not running)
    since: str
    error: str = ""


@dataclass(frozen=True)
class SwarmServiceRow:
    service: str  # without the stack prefix
    mode: str
    running: int
    desired: int | None  # the replica count; None for a job (its completions) or a global service
    image: str
    update: str = ""  # UpdateStatus state and message, when Swarm reports one
    tasks: list[SwarmTaskRow] = field(default_factory=list)


@dataclass(frozen=True)
class SwarmStatus:
    name: str
    url: str
    services: list[SwarmServiceRow] = field(default_factory=list)
    engine: str = ""
    mode: str = "swarm"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _health(task: TaskInfo, service: ServiceInfo) -> str | None:
    if not service.healthcheck:
        return None
    return {"running": "healthy", "starting": "starting"}.get(task.state)


def service_row(
    stack: str, raw_service: Mapping[str, Any], raw_tasks: Sequence[Mapping[str, Any]], nodes: Mapping[str, str]
) -> SwarmServiceRow:
    svc = parse_service(raw_service)
    tasks = [parse_task(t) for t in raw_tasks]
    short = svc.name.removeprefix(f"{stack}_")
    if svc.mode.endswith("job"):
        shown = [max(tasks, key=lambda t: t.created_at)] if tasks else []
    else:
        shown = [t for t in tasks if t.desired == "running"]
    rows = [
        SwarmTaskRow(
            task=f"{short}.{t.slot}" if t.slot else short,
            node=nodes.get(t.node_id, t.node_id[:12]),
            state=t.state,
            health=_health(t, svc),
            since=t.timestamp[:19].replace("T", " "),
            error=t.error,
        )
        for t in sorted(shown, key=lambda t: (t.slot or 0, t.created_at))
    ]
    running = sum(1 for t in tasks if t.desired == "running" and t.state == "running")
    update = f"{svc.update.state}: {svc.update.message}" if svc.update is not None else ""
    return SwarmServiceRow(short, svc.mode, running, svc.replicas, svc.image, update, rows)


def swarm_status(docker: Docker, stack: str, url: str) -> SwarmStatus:
    """Each service of the stack: running/desired, and per current task its node, state and health."""
    nodes = node_names(docker)
    rows = [
        service_row(stack, raw, docker.service_tasks(str(raw["ID"])), nodes)
        for raw in sorted(docker.stack_services(stack), key=lambda r: str((r.get("Spec") or {}).get("Name")))
    ]
    return SwarmStatus(stack, url, rows, docker.engine.describe())


def traefik_here(docker: Docker, stack: str, traefik: str = "traefik") -> ContainerInfo | None:
    """The stack's Traefik task running on this engine's node (it holds the published ports), as a container."""
    service = f"{stack}_{traefik}"
    if docker.service_inspect(service) is None:
        return None
    me = swarm_state(docker.engine_info()).node_id
    for task in map(parse_task, docker.service_tasks(service)):
        if task.node_id == me and task.desired == "running" and task.state == "running":
            name = f"{service}.{task.slot or 1}"
            return ContainerInfo(task.container_id, name, traefik, "running", None, None, 0, None, None, None, "")
    return None
