"""The release image in mode: swarm: built on the manager (Swarm does not build), then shipped to every other
ready node that lacks it, through the node's engine named under swarm/nodes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...config.project import Project
from ...errors import UserError
from ..docker import Docker, LineSink, context_endpoint
from ..target import Engine, Target, checked, connect
from ..wait import Progress
from .parse import NodeInfo, parse_node, swarm_state

__all__ = ["Shipment", "build_file", "build_image", "missing_engine_error", "node_engines", "ship_image"]


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
    report: Progress = lambda _: None,
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
