"""What a failed migration job or rollout tells the user: the failed tasks and the nodes they ran on, their last
log lines, and the fix when a node could not get the image.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..docker import Docker
from ..wait import Deadline, Poll, poll_until
from .parse import TaskInfo, parse_node

__all__ = ["LOGS_WAIT", "describe_task", "image_fix", "indent", "node_names", "service_logs"]

LOGS_WAIT = 5.0


def node_names(docker: Docker) -> dict[str, str]:
    return {n.id: n.hostname for n in (parse_node(raw) for raw in docker.nodes())}


def describe_task(task: TaskInfo, nodes: Mapping[str, str]) -> str:
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


def indent(text: str, lines: int = 30) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (no output)"


def service_logs(docker: Docker, service: str, deadline: Deadline, tail: int = 30) -> str:
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
