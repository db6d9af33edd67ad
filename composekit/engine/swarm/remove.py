"""`composekit down` in mode: swarm: the stack removed, its networks waited for, its volumes kept or deleted."""

from __future__ import annotations

from ...errors import DockerError, HealthTimeoutError
from ..docker import Docker
from ..wait import Deadline, Poll

__all__ = ["down", "release_volumes", "remove_stack"]

# What the engine says of a container that Swarm's task reaper is removing or has removed.
_BEING_REMOVED = ("is already in progress", "No such container")


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


# Container states that still hold a volume busy.
_ENDED = frozenset({"exited", "dead", "created"})


def release_volumes(docker: Docker, stack: str, deadline: Deadline) -> None:
    """After `docker stack rm`: wait until no container of ``stack`` runs on this node, then remove the ended ones
    (a finished migration job's task container outlives the stack, and keeps its volumes in use)."""
    started = deadline.clock()

    def observe() -> Poll[list[tuple[str, str]]]:
        found = docker.stack_containers(stack)
        running = [c for c, state in found if state not in _ENDED]
        return Poll(found, not running, False, ", ".join(c[:12] for c in running))

    seen, timed_out = deadline.poll(observe)
    if timed_out:
        raise HealthTimeoutError(
            f"containers of stack {stack} were still running {deadline.clock() - started:.0f}s after "
            f"`docker stack rm {stack}`: {seen.detail}; its volumes were not deleted\nfix: `docker ps --filter "
            f"label=com.docker.stack.namespace={stack}` shows them; run `composekit down --delete-volumes` again "
            "once they have stopped"
        )
    for container, _state in seen.value:
        try:
            docker.remove_container(container)
        except DockerError as exc:
            # Swarm's task reaper removes ended task containers too: one it is removing, or has removed, is fine.
            if not any(said in str(exc) for said in _BEING_REMOVED):
                raise

    def gone() -> Poll[list[tuple[str, str]]]:
        found = docker.stack_containers(stack)
        return Poll(found, not found, False, ", ".join(c[:12] for c, _ in found))

    seen, timed_out = deadline.poll(gone)
    if timed_out:
        raise HealthTimeoutError(
            f"ended containers of stack {stack} were still being removed {deadline.clock() - started:.0f}s after "
            f"`docker stack rm {stack}`: {seen.detail}; its volumes were not deleted\nfix: run `composekit down "
            "--delete-volumes` again in a minute"
        )


def down(docker: Docker, stack: str, delete_volumes: bool, deadline: Deadline) -> list[str]:
    """`composekit down` in mode: swarm: remove the stack, wait for its networks to go; with ``delete_volumes``
    also delete its volumes on this engine's node (the manager's: acme.json and the database's data), once the
    stack's containers there have stopped and the ended ones are removed."""
    volumes = remove_stack(docker, stack, deadline)
    if delete_volumes:
        release_volumes(docker, stack, deadline)
        for name in volumes:
            docker.remove_volume(name)
    return volumes
