"""Upgrading the shared edge (a new Traefik image, a changed static option) without losing a request: the new
Traefik starts beside the old one in the holder's network namespace (render/edge.py: both listen on the same ports
with reusePort, each in its own slot) while the kernel hands every new connection to the old one (STEER); once the
new one is healthy it gets every new connection, the old one is drained (its slot's middleware answers
Connection: close, so keep-alive clients reconnect, to the new one) and stopped (SIGTERM: its entrypoints' lifeCycle
lets it finish what it accepted). An edge of the layout before the holder moves to it once, with a short gap.

The ACME storage: both Traefiks mount the one acme.json for the seconds they overlap. The new one reads it at start;
a certificate the old one obtains in that overlap (only an app's `up` adding a domain meanwhile would cause one) is
not in the new one's memory and is requested again by it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..config.project import Project
from ..errors import DockerError, HealthTimeoutError, UserError
from ..render.edge import (
    EDGE_NETWORK,
    EDGE_PROJECT,
    HOLDER,
    STEER,
    edge_revision,
    edge_settings,
    other_slot,
    render_edge,
)
from .docker import ContainerInfo, Docker, LineSink
from .edge import TRAEFIK, EdgeState, edge_docker, edge_state, write_edge_file
from .target import Engine
from .wait import Deadline, Poll, Progress

__all__ = ["DRAIN_SECONDS", "SETTLE_SECONDS", "upgrade_edge", "upgrade_reason"]

# After the new Traefik answers its healthcheck (its first configuration is applied: routes and certificates), before
# the old one is drained; then how long the old one answers Connection: close before it gets SIGTERM.
SETTLE_SECONDS = 1.0
DRAIN_SECONDS = 2.0


def upgrade_reason(project: Project, state: EdgeState) -> str | None:
    """Why the running edge needs an upgrade to ``project``'s definition, or None when it has it."""
    if state.holder is None:
        return "it predates the holder layout (its Traefik publishes the ports itself)"
    wanted = edge_revision(project)
    if state.revision != wanted:
        return f"its Traefik's definition changed (revision {state.revision or '(none)'} -> {wanted})"
    return None


def _check_ports(project: Project, state: EdgeState) -> None:
    mine = edge_settings(project)
    running = state.settings or {}
    for key in ("ports/http", "ports/https"):
        if key in running and running[key] != mine[key]:
            raise UserError(
                f"the shared edge publishes {key} {running[key]}, and app {project.config.name} has "
                f"{mine[key]}: the ports are the holder's, which an upgrade never restarts. Fix: use the edge's "
                "ports in composekit.yaml, or `composekit edge down` (the sites are unanswered until the next "
                "`composekit up`) and then `composekit edge up`. Nothing was changed."
            )


def upgrade_edge(
    project: Project,
    engine: Engine | None,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Bring the running edge to ``project``'s definition; the seconds the upgrade took, or None when it had it."""
    edge = edge_docker(engine)
    state = edge_state(edge)
    reason = upgrade_reason(project, state)
    if reason is None:
        return None
    _check_ports(project, state)
    began = deadline.clock()
    report(f"upgrading the shared edge: {reason}")
    if state.holder is None:
        _move_to_holder(project, edge, state, engine, deadline, report, on_line)
    else:
        _handover(project, edge, state, engine, deadline, report, on_line, sleep)
    took = deadline.clock() - began
    report(f"the shared edge is upgraded ({took:.1f} s)")
    return took


def _write_edge_file(edge: Docker, draining: str | None) -> None:
    write_edge_file(edge, draining)


def _wait_healthy(edge: Docker, container: str, deadline: Deadline) -> None:
    def observe() -> Poll[str]:
        found = next((c for c in edge.containers() if c.name == container), None)
        if found is None:
            return Poll("gone", False, True, f"{container} is gone")
        if found.status == "exited" or found.restart_count >= 2:
            return Poll(found.status, False, True, f"{container} {found.status} (exit code {found.exit_code})")
        said = f"{container}: {found.status}, health {found.health or 'n/a'}"
        return Poll(said, found.status == "running" and found.health in (None, "healthy"), False, said)

    seen, _ = deadline.poll(observe)
    if not seen.done:
        logs = edge.container_logs(container, 20)
        raise HealthTimeoutError(
            f"the shared edge's new Traefik did not turn healthy ({seen.detail}), so the old one keeps serving and "
            f"the new one is removed. Its last log lines:\n{logs}\nFix: correct what they name (images/traefik, "
            "the ACME settings) and run `composekit edge up` again."
        )


def _handover(
    project: Project,
    edge: Docker,
    state: EdgeState,
    engine: Engine | None,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
    sleep: Callable[[float], None],
) -> None:
    old, holder = state.traefik, state.holder
    assert old is not None and holder is not None  # the edge runs, in the holder layout
    slot = other_slot(state.slot)
    _write_edge_file(edge, None)  # both slots' middlewares defined (an edge an older composekit wrote has none)
    _steer(edge, holder.name, 0)  # the running Traefik takes every new connection: the new one starts unseen
    known = {c.id for c in edge.containers() if c.service == TRAEFIK}
    report(f"starting the new Traefik (slot {slot}) beside {old.name}")
    with tempfile.TemporaryDirectory(prefix="composekit-edge-") as tmp:
        path = Path(tmp) / "compose.yaml"
        path.write_text(render_edge(project, slot), encoding="utf-8")
        edge_docker(engine, [path]).start_beside(TRAEFIK, len(known) + 1, on_line)
    fresh = [c for c in edge.containers() if c.service == TRAEFIK and c.id not in known]
    if len(fresh) != 1:
        raise DockerError(
            f"expected one new Traefik container in {EDGE_PROJECT}, found {len(fresh)}",
            ["docker", "compose", "-p", EDGE_PROJECT, "up", "--scale", f"{TRAEFIK}={len(known) + 1}"],
            "",
            "`composekit edge status` shows the edge's containers",
        )
    new = fresh[0]
    try:
        _wait_healthy(edge, new.name, deadline)
    except (HealthTimeoutError, DockerError):
        edge.remove_now(new.name)
        raise
    sleep(SETTLE_SECONDS)
    _steer(edge, holder.name, 1)  # from now on every new connection goes to the new one
    report(f"draining {old.name} (slot {state.slot}): new connections go to {new.name}; its answers close theirs")
    _write_edge_file(edge, state.slot)
    sleep(DRAIN_SECONDS)
    report(f"stopping {old.name}: it finishes what it accepted")
    edge.stop_and_remove(old.name)
    _steer(edge, holder.name, 0)  # the oldest again, for the next upgrade
    _write_edge_file(edge, None)


def _steer(edge: Docker, holder: str, index: int) -> None:
    edge.exec(holder, ["python3", "-I", "-c", STEER, str(index)])


def _move_to_holder(
    project: Project,
    edge: Docker,
    state: EdgeState,
    engine: Engine | None,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
) -> None:
    """Once: the Traefik of the old layout publishes the ports itself, so they are free for the holder only once it
    stops; the holder then joins every network the old Traefik was on, at the same address. A gap of seconds."""
    from .steps import wait_healthy  # steps imports edge: imported late, no cycle

    old = state.traefik
    assert old is not None
    own = f"{EDGE_PROJECT}_{EDGE_NETWORK}"
    addresses = {net: ip for net, ip in edge.container_addresses(old.name).items() if net != own}
    _write_edge_file(edge, None)
    report(
        f"moving the shared edge to the holder layout: {old.name} stops; the sites are unanswered until the new "
        "Traefik is healthy (once)"
    )
    edge.stop_and_remove(old.name)
    with tempfile.TemporaryDirectory(prefix="composekit-edge-") as tmp:
        path = Path(tmp) / "compose.yaml"
        path.write_text(render_edge(project, "a", edge.kernel_migrates_requests()), encoding="utf-8")
        files = edge_docker(engine, [path])
        files.up([HOLDER], dependencies=False, on_line=on_line)
        holder = _one(edge, HOLDER)
        for network, ip in sorted(addresses.items()):
            edge.network_connect(network, holder.name, ip=ip or None)
        files.up([TRAEFIK], dependencies=False, on_line=on_line)
        wait_healthy(files, [HOLDER, TRAEFIK], deadline)


def _one(edge: Docker, service: str) -> ContainerInfo:
    found = [c for c in edge.containers() if c.service == service]
    if len(found) != 1:
        raise DockerError(
            f"expected one {service} container in {EDGE_PROJECT}, found {len(found)}",
            ["docker", "compose", "-p", EDGE_PROJECT, "ps"],
            "",
            "`composekit edge status` shows the edge's containers",
        )
    return found[0]
