"""Swarm mode on the engine: what `up`, `down`, `status` and `doctor` do with a Swarm manager.

Everything here reads the raw JSON the Docker module returns (`docker service inspect`, `docker inspect --type
task`, `docker node inspect`, `docker info`'s Swarm part) and decides from it; tests/unit/test_swarm_recorded.py
drives it with JSON recorded from a real Swarm. Swarm itself runs the stack: composekit ships the image, runs the
migration job before the app is updated, and waits for Swarm to report the update converged (or rolled back).

A task's health: Swarm keeps a task whose container has a healthcheck in state ``starting`` until the container
is healthy, and fails it when the container turns unhealthy, so ``running`` means healthy (or no healthcheck).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..config.project import Project
from ..errors import HealthTimeoutError, MigrationError, UserError
from .docker import ContainerInfo, Docker, LineSink, context_endpoint
from .target import Engine, Target, checked, connect
from .wait import Deadline, Poll, poll_until

__all__ = [
    "NodeInfo",
    "ServiceInfo",
    "Shipment",
    "SwarmServiceRow",
    "SwarmState",
    "SwarmStatus",
    "SwarmTaskRow",
    "TaskInfo",
    "UpdateState",
    "build_image",
    "down",
    "node_engines",
    "parse_node",
    "parse_service",
    "parse_task",
    "remove_stack",
    "require_manager",
    "run_job",
    "ship_image",
    "swarm_state",
    "swarm_status",
    "traefik_here",
    "wait_converged",
]

Report = Callable[[str], None]
STACK_LABEL = "com.docker.stack.namespace"
# UpdateStatus states that mean Swarm did not keep the new version (failure_action rollback or pause).
ROLLED_BACK = ("rollback_started", "rollback_completed", "rollback_paused", "paused")
FAILED_STATES = ("failed", "rejected", "orphaned")
# A slot whose tasks failed this often since the deploy is crash-looping: no point waiting for the deadline.
FAILURES_PER_SLOT = 3
LOGS_WAIT = 5.0


def _time(text: str | None) -> datetime | None:
    """Swarm's RFC 3339 time with nanoseconds -> datetime (microseconds); None for none or the zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    digits = "".join(c for c in rest if c.isdigit())[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{head}.{digits}+00:00")


# parsed objects -------------------------------------------------------------------------------------


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
    completed_at: str


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
            str(update.get("CompletedAt") or ""),
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
    service_id: str
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
        service_id=str(raw.get("ServiceID") or ""),
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


def _node_names(docker: Docker) -> dict[str, str]:
    return {n.id: n.hostname for n in (parse_node(raw) for raw in docker.nodes())}


def _describe_task(task: TaskInfo, nodes: Mapping[str, str]) -> str:
    where = nodes.get(task.node_id, task.node_id[:12] or "no node")
    said = task.error or task.message
    return f"task {task.id[:12]} on {where}: {task.state}" + (f" ({said})" if said else "")


def _registry_host(image: str) -> str | None:
    """The registry an image reference names (Docker's rule: a first path part with "." or ":", or localhost)."""
    first, slash, _ = image.partition("/")
    return first if slash and ("." in first or ":" in first or first == "localhost") else None


def image_fix(tasks: list[TaskInfo], nodes: Mapping[str, str]) -> str | None:
    """The fix when a node could not get the image (a task rejected with "No such image"), else None."""
    missing = [t for t in tasks if "no such image" in t.error.lower()]
    if not missing:
        return None
    where = ", ".join(sorted({nodes.get(t.node_id, t.node_id[:12]) for t in missing}))
    image = missing[-1].image
    host = _registry_host(image)
    if host is not None:
        return (
            f"node {where} could not pull {image} from {host}: log in to it on this machine (`docker login {host}`; "
            "composekit hands that login to the nodes) and check that the node reaches it, then run `composekit up` "
            "again"
        )
    return (
        f"node {where} does not have {image}: name its engine under swarm/nodes so that composekit ships the image "
        "there (or set registry:), then run `composekit up` again"
    )


def _indent(text: str, lines: int = 30) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (no output)"


# the engine is a manager ------------------------------------------------------------------------------


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


# the image ---------------------------------------------------------------------------------------------------


def build_file(project: Project, image: str) -> str:
    """A Compose file with only the app's build, tagged ``image``: Swarm does not build, and `docker compose
    build` is the builder that works everywhere (BuildKit, cache mounts) where a plain `docker build` may not."""
    dockerfile = project.dockerfile if project.dockerfile is not None else project.out_dir / "Dockerfile"
    build = {
        "context": str(project.app_dir.resolve()),
        "dockerfile": os.path.relpath(dockerfile.resolve(), project.app_dir.resolve()),
        "args": {"PYTHON_IMAGE": project.config.images.python},
    }
    return yaml.safe_dump({"services": {"app": {"build": build, "image": image}}}, sort_keys=False)


def build_image(project: Project, docker: Docker, image: str, on_line: LineSink | None = None) -> None:
    """Build the release image ``image`` on ``docker``'s engine (the manager)."""
    with tempfile.TemporaryDirectory(prefix="composekit-build-") as tmp:
        path = Path(tmp) / "build.yaml"
        path.write_text(build_file(project, image), encoding="utf-8")
        Docker(project.config.name, [path], project_directory=project.out_dir, engine=docker.engine).build(on_line)


# the image on every node ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shipment:
    """What shipping the release image did for one node: ``sent`` bytes, or why nothing was sent."""

    node: str
    sent: int
    note: str  # "built here", "already had it", "shipped", "down: skipped"


def _node_target(hostname: str, address: str) -> Target:
    source = f"swarm/nodes/{hostname}"
    if "://" in address:
        return checked(Target(address, source))
    name, url = context_endpoint(address)
    return checked(Target(url, f'{source} (docker context "{name}")', name))


@contextmanager
def node_engines(
    nodes: Mapping[str, str], wanted: list[str], connector: Callable[[Target], Any] = connect
) -> Iterator[dict[str, Engine]]:
    """The engines of the ``wanted`` nodes (hostname -> address from swarm/nodes), connected for the block."""
    with ExitStack() as stack:
        yield {host: stack.enter_context(connector(_node_target(host, nodes[host]))) for host in wanted}


def missing_engine_error(hostname: str, source: str) -> UserError:
    return UserError(
        f"Swarm node {hostname} can only run the app if the app image reaches it, but {source} has no engine "
        f"address for it under swarm/nodes and no registry is set. Fix: add it, e.g. "
        f'swarm: {{nodes: {{{hostname}: "ssh://user@{hostname}"}}}} (any Docker host or context name works), '
        "or set registry: to push the image there instead"
    )


def ship_image(
    docker: Docker,
    image: str,
    nodes: Mapping[str, str],
    source: str,
    report: Report = lambda _: None,
    node_docker: Callable[[Engine], Docker] | None = None,
    connector: Callable[[Target], Any] = connect,
) -> list[Shipment]:
    """Give ``image`` (built on ``docker``'s engine, the manager) to every other ready node that lacks it: `docker
    save` here, `docker load` through the node's engine from ``nodes`` (swarm/nodes). A node without an entry is an
    error naming it; a node that is down is skipped (Swarm schedules nothing there), and said so."""
    me = swarm_state(docker.engine_info()).node_id
    found = [parse_node(raw) for raw in docker.nodes()]
    shipments: list[Shipment] = []
    others: list[NodeInfo] = []
    for node in sorted(found, key=lambda n: (n.id != me, n.hostname)):
        if node.id == me:
            shipments.append(Shipment(node.hostname, 0, "built here"))
        elif node.state != "ready":
            shipments.append(Shipment(node.hostname, 0, f"{node.state}: skipped"))
            report(f"node {node.hostname} is {node.state}: the image is not shipped there (Swarm schedules nothing)")
        elif node.hostname not in nodes:
            raise missing_engine_error(node.hostname, source)
        else:
            others.append(node)
    make = node_docker or (lambda engine: Docker(docker.project_name, [], engine=engine))
    with node_engines(nodes, [n.hostname for n in others], connector) as engines:
        for node in others:
            there = make(engines[node.hostname])
            if there.image_exists(image):
                shipments.append(Shipment(node.hostname, 0, "already had it"))
                report(f"node {node.hostname} already has {image}")
                continue
            shipped = docker.ship_image(image, there)
            shipments.append(Shipment(node.hostname, shipped.sent, "shipped"))
            report(f"shipped {image} to node {node.hostname} ({nodes[node.hostname]}): {shipped.describe()}")
    return shipments


# the migration job --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobResult:
    service: str
    task: TaskInfo
    seconds: float


def run_job(
    docker: Docker,
    stack: str,
    service: str,
    file: Path,
    variables: Mapping[str, str],
    deadline: Deadline,
    report: Report = lambda _: None,
    registry_auth: bool = False,
) -> JobResult:
    """Run the one-shot job of ``file`` (a replicated-job) in ``stack``: remove the job left by the previous deploy,
    deploy the file into the same stack (``registry_auth``: see Docker.stack_deploy), wait for its task to
    complete. A failed job raises MigrationError with its error and output; nothing else in the stack is touched."""
    name = f"{stack}_{service}"
    if docker.service_inspect(name) is not None:
        docker.service_remove(name)
    started = deadline.clock()
    docker.stack_deploy(stack, file, variables, registry_auth)
    report(f"running the migration job {name}")

    def observe() -> Poll[TaskInfo | None]:
        tasks = [parse_task(t) for t in docker.service_tasks(name)]
        if not tasks:
            return Poll(None, False, False, "no task yet")
        task = max(tasks, key=lambda t: t.created_at)
        if task.state == "complete":
            return Poll(task, True)
        if task.state in FAILED_STATES or (task.desired == "shutdown" and task.state == "shutdown"):
            return Poll(task, False, True, task.state)
        return Poll(task, False, False, f"{task.state} ({task.message})" if task.message else task.state)

    seen, timed_out = deadline.poll(observe)
    if seen.done and seen.value is not None:
        return JobResult(name, seen.value, deadline.clock() - started)
    ran_out = deadline.ran_out("the migration job ran", started)
    nodes = _node_names(docker)
    logs = _logs(docker, name, deadline, tail=40)
    if timed_out:
        raise HealthTimeoutError(
            f"{ran_out}; its task was still {seen.detail} and the app "
            f"was not touched.\nLast log lines of {name}:\n{_indent(logs)}\n"
            "fix: make the migration finish (is it waiting for the database?) or raise --timeout"
        )
    task = seen.value
    assert task is not None
    raise MigrationError(
        f"the migration job {name} failed ({_describe_task(task, nodes)}), so the app was not updated: the running "
        "service is untouched",
        ["docker", "stack", "deploy", "--compose-file", str(file), stack],
        logs,
        image_fix([task], nodes) or "fix the migration (its output is above) and run `composekit up` again",
    )


# convergence ------------------------------------------------------------------------------------------------


def _logs(docker: Docker, service: str, deadline: Deadline, tail: int = 30) -> str:
    """`docker service logs` of a service or task; a task that just ended on another node may need a moment
    before the manager has its output, so an empty answer is asked again for up to LOGS_WAIT seconds."""
    seen, _ = poll_until(
        lambda: (lambda text: Poll(text, bool(text.strip())))(docker.service_logs(service, tail=tail)),
        min(LOGS_WAIT, max(deadline.remaining(), 1.0)),
        first_delay=0.5,
        max_delay=1.0,
        clock=deadline.clock,
        sleep=deadline.sleep,
    )
    return seen.value


def _failed_since(tasks: list[TaskInfo], since: str) -> list[TaskInfo]:
    start = _time(since)
    return [t for t in tasks if t.state in FAILED_STATES and (start is None or (_time(t.created_at) or start) >= start)]


def wait_converged(
    docker: Docker, service: str, before: Mapping[str, Any] | None, deadline: Deadline, what: str = ""
) -> ServiceInfo:
    """Wait until ``service`` has converged: when its TaskTemplate changed since ``before`` (its inspect JSON
    ahead of the deploy), Swarm's rolling update started and completed; then every desired task runs (healthy,
    see the module doc) and their number is the replica count. Swarm rolling the update back (or pausing it) is
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
    nodes = _node_names(docker)
    if not tasks:
        tasks = [parse_task(t) for t in docker.service_tasks(service)] if svc is not None else []
    # Swarm names the task that made it roll back; its logs say more than the whole service's.
    named = set(re.findall(r"\btask ([a-z0-9]{25})\b", seen.detail))
    failed = [t for t in tasks if t.id in named or t in _failed_since(tasks, since)]
    lines = [_describe_task(t, nodes) for t in sorted(failed, key=lambda t: t.timestamp)[-5:]]
    failures = "\n".join(f"    {line}" for line in lines) or "    (no failed task)"
    culprit = next((t.id for t in failed if t.id in named), None)
    logs = _logs(docker, culprit or service, deadline) if svc is not None else ""
    source = f"task {culprit[:12]} of {service}" if culprit else service
    no_image = image_fix(failed, nodes)
    if seen.failed and seen.detail.startswith("UpdateStatus"):
        fix = no_image or (
            "make the new version start and pass its healthcheck (`composekit logs app`), then run `composekit up` "
            "again"
        )
        raise HealthTimeoutError(
            f"Swarm rolled back the new version of {what}: {seen.detail}. The previous version is serving again.\n"
            f"Failed tasks:\n{failures}\nLast log lines of {source}:\n{_indent(logs)}\nfix: {fix}"
        )
    fix = no_image or "check that the service starts and passes its healthcheck (`composekit status` shows its tasks)"
    raise HealthTimeoutError(
        f"{head}. Last status: {seen.detail}\nFailed tasks:\n{failures}\n"
        f"Last log lines of {source}:\n{_indent(logs)}\nfix: {fix}; volumes are kept, nothing was deleted"
    )


# status -------------------------------------------------------------------------------------------------------


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
    nodes = _node_names(docker)
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


# down ---------------------------------------------------------------------------------------------------------


def remove_stack(docker: Docker, stack: str, deadline: Deadline) -> list[str]:
    """`docker stack rm`, then wait until the stack's networks are gone (Swarm removes them once the tasks have
    stopped, so a new deploy right after does not collide with them). Volumes are kept; returns them."""
    volumes = docker.stack_volumes(stack)
    if not docker.stack_services(stack) and not docker.stack_networks(stack):
        return volumes
    docker.stack_remove(stack)
    started = deadline.clock()

    def observe() -> Poll[list[str]]:
        left = [str(n.get("Name")) for n in docker.stack_networks(stack)]
        return Poll(left, not left, False, ", ".join(left))

    seen, timed_out = deadline.poll(observe)
    if timed_out:
        raise HealthTimeoutError(
            f"the networks of stack {stack} were still there {deadline.clock() - started:.0f}s after "
            f"`docker stack rm {stack}`: {seen.detail}\nfix: `docker stack ps {stack}` shows tasks that have not "
            "stopped yet; run `composekit down` again once they have"
        )
    return volumes


def down(docker: Docker, stack: str, delete_volumes: bool, deadline: Deadline) -> list[str]:
    """`composekit down` in mode: swarm: remove the stack, wait for its networks to go; with ``delete_volumes``
    also delete its volumes on this engine's node (the manager's: acme.json and the database's data)."""
    volumes = remove_stack(docker, stack, deadline)
    if delete_volumes:
        for name in volumes:
            docker.remove_volume(name)
    return volumes
