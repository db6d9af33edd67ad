"""`composekit doctor` in mode: swarm: the Swarm, this engine's role, the nodes, the stack's overlay networks, and
which nodes hold the current release image. The judging is pure (``swarm_checks``); ``gather_swarm`` asks the
engines."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.docker import Docker
from ..engine.swarm import NodeInfo, SwarmState, node_engines, parse_node, parse_service, swarm_state, traefik_here
from ..engine.target import Engine, Target, connect
from ..errors import DockerError, UserError
from .checks import CheckResult

__all__ = ["SwarmFacts", "gather_swarm", "swarm_checks"]

# What doctor knows about one node's copy of the release image: True / False, or why it could not tell.
ImageState = bool | str


@dataclass(frozen=True)
class SwarmFacts:
    state: SwarmState
    nodes: list[NodeInfo] = field(default_factory=list)
    networks: Sequence[Mapping[str, Any]] = field(default_factory=list)
    images: dict[str, ImageState] = field(default_factory=dict)  # node hostname -> has the image
    image: str = ""
    registry: str | None = None
    error: str = ""  # why nodes/networks could not be read
    traefik: str | None = None  # the stack's Traefik task running on this engine's node (it holds the ports)


def _node_check(node: NodeInfo) -> CheckResult:
    name = f"swarm node {node.hostname}"
    what = f"{node.role}{' (leader)' if node.leader else ''}, {node.state}, availability {node.availability}"
    if node.state != "ready":
        return CheckResult.warn(
            name,
            f"{what}: Swarm runs nothing there and moves its tasks to the other nodes",
            f"start the Docker engine on {node.hostname} (it rejoins by itself), or `docker node rm {node.hostname}` "
            "if it is gone for good",
        )
    if node.availability != "active":
        return CheckResult.warn(
            name,
            f"{what}: Swarm schedules no new task there",
            f"`docker node update --availability active {node.hostname}` when it should run tasks again",
        )
    return CheckResult.ok(name, what)


def _image_check(node: str, has: ImageState, image: str) -> CheckResult:
    name = f"image on {node}"
    if has is True:
        return CheckResult.ok(name, f"{image} is there")
    if has is False:
        return CheckResult.warn(
            name,
            f"{image} (the current release) is not there: Swarm cannot start the app on {node} until it is",
            "`composekit up` ships it (docker save | docker load through the node's engine in swarm/nodes)",
        )
    return CheckResult.warn(name, f"unknown: {has}", f"add {node} under swarm/nodes, or set registry:")


def swarm_checks(facts: SwarmFacts, stack: str) -> list[CheckResult]:
    """Swarm active, this engine a manager, each node, the stack's overlay networks, the image on each node."""
    s = facts.state
    if not s.active:
        return [
            CheckResult.fail(
                "swarm",
                f"not active on this engine (Swarm: {s.state}{', ' + s.error if s.error else ''})",
                "`docker swarm init` on the manager, `docker swarm join` on the other nodes; or set mode: compose",
            )
        ]
    counts = f": {s.nodes} node(s), {s.managers} manager(s)" if s.manager else " (node counts: ask a manager)"
    results = [CheckResult.ok("swarm", "active" + counts)]
    if not s.manager:
        results.append(
            CheckResult.fail(
                "swarm manager",
                "this engine is a worker: stacks are deployed, and services inspected, on a manager only",
                "point composekit at a manager (--host, host:, DOCKER_HOST or a docker context)",
            )
        )
        return results
    results.append(CheckResult.ok("swarm manager", "this engine is a manager"))
    if facts.error:
        results.append(CheckResult.fail("swarm nodes", facts.error, "check that the manager answers `docker node ls`"))
        return results
    results.extend(_node_check(n) for n in facts.nodes)
    results.append(_networks_check(facts.networks, stack))
    if facts.registry:
        results.append(
            CheckResult.ok("release image", f"{facts.image}: pushed to {facts.registry} by `up`; Swarm pulls it")
        )
    else:
        results.extend(_image_check(node, has, facts.image) for node, has in sorted(facts.images.items()))
    return results


def _networks_check(networks: Sequence[Mapping[str, Any]], stack: str) -> CheckResult:
    name = "overlay networks"
    if not networks:
        return CheckResult.ok(name, f"stack {stack} has none yet: the first `composekit up` creates them")
    wrong = [str(n.get("Name")) for n in networks if n.get("Driver") != "overlay" or n.get("Scope") != "swarm"]
    if wrong:
        return CheckResult.fail(
            name,
            f"not Swarm overlay networks: {', '.join(wrong)}",
            f"`composekit down` then `composekit up` recreates the stack's networks (`docker stack rm {stack}`)",
        )
    shown = ", ".join(f"{n.get('Name')}{' (internal)' if n.get('Internal') else ''}" for n in networks)
    return CheckResult.ok(name, shown)


def gather_swarm(
    docker: Docker,
    stack: str,
    image: str,
    node_addresses: Mapping[str, str],
    registry: str | None,
    connector: Callable[[Target], Any] = connect,
    node_docker: Callable[[Engine], Docker] | None = None,
    app: str = "app",
) -> SwarmFacts:
    """Ask the manager for the Swarm, its nodes and the stack's networks, and each node's engine (swarm/nodes)
    whether it holds the image the app service runs (``image``, the release a deploy would build, when the stack
    is not deployed); a node that cannot be asked is said so, not a failure of doctor."""
    state = swarm_state(docker.engine_info())
    if not (state.active and state.manager):
        return SwarmFacts(state, image=image, registry=registry)
    try:
        nodes = [parse_node(raw) for raw in docker.nodes()]
        networks = docker.stack_networks(stack)
        running = docker.service_inspect(f"{stack}_{app}")
    except DockerError as exc:
        return SwarmFacts(state, image=image, registry=registry, error=exc.summary)
    if running is not None:  # the release the app service runs is the current one (a build may be newer)
        image = parse_service(running).image
    images: dict[str, ImageState] = {}
    make = node_docker or (lambda engine: Docker(stack, [], engine=engine))
    for node in nodes:
        if node.id == state.node_id:
            images[node.hostname] = docker.image_exists(image)
        elif registry:
            continue
        elif node.hostname not in node_addresses:
            images[node.hostname] = "no engine address for it under swarm/nodes and no registry set"
        elif node.state != "ready":
            images[node.hostname] = f"the node is {node.state}"
        else:
            try:
                with node_engines(node_addresses, [node.hostname], connector) as engines:
                    images[node.hostname] = make(engines[node.hostname]).image_exists(image)
            except UserError as exc:  # DockerError, SshError: the node's engine did not answer
                images[node.hostname] = (
                    f"its engine ({node_addresses[node.hostname]}) did not answer: " + (str(exc).splitlines()[0])
                )
    return SwarmFacts(state, nodes, networks, images, image, registry, traefik=_traefik_name(docker, stack))


def _traefik_name(docker: Docker, stack: str) -> str | None:
    found = traefik_here(docker, stack)
    return found.name if found is not None else None
