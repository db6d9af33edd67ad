"""The shared edge on the engine (edge: shared; render/edge.py renders it): the checks before an app's `up` changes
anything (the edge's settings agree with the app's, no other app routes its domains, the ports are the edge's or
free), creating the edge when no edge runs (never touching a running one: adding an app never restarts it), joining
the app's `web` network, the app's routes file in the edge's directory, and what `down` and `composekit edge` do."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config.project import Project
from ..errors import DockerError, UserError
from ..render.compose import traefik_address
from ..render.edge import (
    CREATED_BY_LABEL,
    EDGE_FILE,
    EDGE_NETWORK,
    EDGE_PROJECT,
    HOLDER,
    REVISION_LABEL,
    SETTINGS_LABEL,
    SLOT_LABEL,
    domain_conflict,
    edge_dynamic,
    edge_settings,
    new_names,
    render_edge,
    route_file,
    settings_mismatch,
)
from ..render.names import APP_SERVICE
from ..render.routes_volume import ROUTES, ROUTES_DIR
from ..render.traefik import routes_file
from .docker import ContainerInfo, Docker, LineSink
from .edge_lock import edge_lock
from .target import Engine
from .wait import Deadline, Progress

__all__ = [
    "EdgeState",
    "app_network",
    "claim_domains",
    "claim_needed",
    "connect_app",
    "detach_app",
    "edge_docker",
    "edge_down",
    "edge_logs",
    "edge_state",
    "edge_status",
    "ensure_edge",
    "preflight",
    "read_route_files",
    "write_edge_file",
    "write_route",
]

TRAEFIK = "traefik"

# Runs in the edge's routes container: every app's routes file (not the edge's own), as JSON {app: text}.
_LIST_ROUTES = (
    "import json, os, sys\n"
    "d, skip = sys.argv[1], sys.argv[2]\n"
    "out = {}\n"
    "for n in sorted(os.listdir(d)):\n"
    "    if n.endswith('.yml') and n != skip and not n.startswith('.'):\n"
    "        out[n[:-4]] = open(os.path.join(d, n)).read()\n"
    "print(json.dumps(out))\n"
)
_REMOVE = "import os, sys\np = sys.argv[1]\nif os.path.exists(p):\n    os.remove(p)\n"


def edge_docker(engine: Engine | None, files: list[Path] | None = None) -> Docker:
    return Docker(EDGE_PROJECT, files or [], engine=engine)


def app_network(project: Project) -> str:
    """The app's front network, as Compose names it."""
    return f"{project.config.name}_web"


@dataclass(frozen=True)
class EdgeState:
    containers: list[ContainerInfo]
    settings: dict[str, str] | None  # the running Traefik's, from its label
    created_by: str
    revision: str | None = None  # the Traefik's definition (render/edge.py edge_revision), from its label
    slot: str = "a"

    @property
    def traefik(self) -> ContainerInfo | None:
        return next((c for c in self.containers if c.service == TRAEFIK), None)

    @property
    def holder(self) -> ContainerInfo | None:
        """The container owning the edge's network namespace and ports (None: an edge of the layout before it,
        whose Traefik owned them)."""
        return next((c for c in self.containers if c.service == HOLDER), None)

    @property
    def network_owner(self) -> ContainerInfo | None:
        """The container that joins the apps' networks: the holder, or the Traefik of an edge without one."""
        return self.holder or self.traefik

    @property
    def running(self) -> bool:
        """Traefik and the routes container both run."""
        up = {c.service for c in self.containers if c.status == "running"}
        return {TRAEFIK, ROUTES} <= up


def edge_state(edge: Docker, attempts: int = 3) -> EdgeState:
    """The edge as it is now. A Traefik that goes between the listing and its inspection (an upgrade removing the old
    one, by another app's `up` or `edge up`) is no error: the edge is looked at again."""
    containers = edge.containers()
    # during an upgrade two run: the state is the older one's until it is gone
    traefiks = sorted((c for c in containers if c.service == TRAEFIK), key=lambda c: c.started_at or "")
    traefik = next((c for c in traefiks if c.status == "running"), traefiks[0] if traefiks else None)
    settings: dict[str, str] | None = None
    created_by = "(unknown)"
    labels: dict[str, str] = {}
    if traefik is not None:
        try:
            labels = edge.container_labels(traefik.name)
        except DockerError:
            if attempts <= 1 or any(c.name == traefik.name for c in edge.containers()):
                raise
            return edge_state(edge, attempts - 1)
        created_by = labels.get(CREATED_BY_LABEL, created_by)
        try:
            settings = json.loads(labels.get(SETTINGS_LABEL, "null"))
        except json.JSONDecodeError:
            settings = None
    ordered = [traefik] if traefik is not None else []
    ordered += [c for c in containers if c is not traefik]
    return EdgeState(ordered, settings, created_by, labels.get(REVISION_LABEL), labels.get(SLOT_LABEL, "a"))


def _routes_container(edge: Docker) -> str:
    for c in edge.containers():
        if c.service == ROUTES and c.status == "running":
            return c.name
    raise DockerError(
        f"the shared edge's {ROUTES} container is not running, so no app's routes can be read or written",
        ["docker", "compose", "-p", EDGE_PROJECT, "ps"],
        "",
        "`composekit edge status` shows the edge; `composekit up` of an app with edge: shared "
        "(or `composekit edge up`) starts it",
    )


def read_route_files(edge: Docker) -> dict[str, str]:
    """Every app's routes file on the edge, by app name."""
    out = edge.exec(_routes_container(edge), ["python3", "-I", "-c", _LIST_ROUTES, ROUTES_DIR, EDGE_FILE])
    found: dict[str, str] = json.loads(out or "{}")
    return found


def write_edge_file(edge: Docker, draining: str | None = None) -> None:
    """The edge's own file (render/edge.py edge_dynamic) as this composekit renders it: the routes container puts
    it in place only on a fresh volume, and a volume kept by `edge down` or from an older composekit has an older
    one, without the drain middlewares Traefik's entrypoints name (every router would be dropped)."""
    from .routes_volume import WRITE_FILE  # routes_volume dispatches here: imported late, no cycle

    path = f"{ROUTES_DIR}/{EDGE_FILE}"
    edge.exec(_routes_container(edge), ["python3", "-I", "-c", WRITE_FILE, path, edge_dynamic(draining)])


def write_route(
    project: Project, edge: Docker, text: str, report: Progress = lambda _: None, *, held: bool = False
) -> None:
    """Write the app's routes file on the edge. A file routing a name the app's file there does not route yet (its
    first file, or a domain added) claims it: the check that no other app routes it and the write happen under the
    edge lock (``held``: the caller holds it), so of two apps claiming one name at once exactly one gets it, and the
    other is refused naming both, its file unwritten. A file adding no name takes no lock."""
    files = read_route_files(edge)
    if not new_names(text, files.get(project.config.name)):
        _put_route(project, edge, text)
    elif held:
        _claim(project, edge, text, files)
    else:
        with edge_lock(project, edge, f"{project.config.name}: claiming its domains", report=report):
            _claim(project, edge, text, read_route_files(edge))


def _claim(project: Project, edge: Docker, text: str, files: dict[str, str]) -> None:
    """``files``: every app's routes file, read under the edge lock."""
    _refuse_conflict(project, files)
    _put_route(project, edge, text)


def _refuse_conflict(project: Project, files: dict[str, str]) -> None:
    conflict = domain_conflict(project.config, files)
    if conflict is not None:
        raise UserError(conflict)


def _put_route(project: Project, edge: Docker, text: str) -> None:
    from .routes_volume import WRITE_FILE  # routes_volume dispatches here: imported late, no cycle

    edge.exec(_routes_container(edge), ["python3", "-I", "-c", WRITE_FILE, route_file(project.config), text])


def _claim_text(project: Project, serving: list[str]) -> str:
    from .routes_volume import new_generation  # routes_volume dispatches here: imported late, no cycle

    return routes_file(project.config, new_generation(), serving, serving)


def claim_needed(project: Project, edge: Docker) -> bool:
    """Whether `up` must claim names on the running edge: the app has no routes file there, or its file lacks a
    name the app now routes."""
    return bool(new_names(_claim_text(project, []), read_route_files(edge).get(project.config.name)))


def _serving(docker: Docker) -> list[str]:
    """The app's running containers, by name."""
    return sorted(c.name for c in docker.containers() if c.service == APP_SERVICE and c.status == "running")


@dataclass(frozen=True)
class Claim:
    """What claim_domains wrote: the names it added, the app's routes file it wrote, the one before (None: none)."""

    names: tuple[str, ...]
    written: str
    before: str | None


def claim_domains(project: Project, docker: Docker, report: Progress = lambda _: None) -> Claim | None:
    """Before any of the app's containers changes, and with the edge lock held (the caller's): the names the app
    routes that its routes file on the edge does not (all of them at its first `up`) are checked against every other
    app's file and written, so a second app claiming one of them is refused from now on. The file routes them to the
    release serving now (none at a first `up`: Traefik answers 503 until the switch routes the new one), as the
    switch's first generation would. None when it claimed nothing."""
    edge = edge_docker(docker.engine)
    serving = _serving(docker)
    text = _claim_text(project, serving)
    files = read_route_files(edge)
    before = files.get(project.config.name)
    added = new_names(text, before)
    if not added:
        return None
    _refuse_conflict(project, files)
    if serving:
        connect_app(project, edge, report)  # routed to the serving release: the edge must reach it
    _put_route(project, edge, text)
    report(f"claimed {', '.join(sorted(added))} on the shared edge for app {project.config.name}")
    return Claim(tuple(sorted(added)), text, before)


def give_back(project: Project, docker: Docker, claim: Claim, report: Progress = lambda _: None) -> None:
    """After a failed `up` whose claim took names: give them back, under the edge lock, so that they route nothing
    and another app may claim them. A first `up` (the app had no routes file) that leaves nothing of the app running
    has its file removed and the edge off its network (as `down` does); an `up` that added names has its file put
    back as it was, when it is still the one the claim wrote (a switch that wrote another has routed the serving
    release again itself). Anything else is left as it is."""
    edge = edge_docker(docker.engine)
    with edge_lock(project, edge, f"{project.config.name}: giving back its claim", report=report):
        current = read_route_files(edge).get(project.config.name)
        if claim.before is None:
            if current is None or _serving(docker):
                return
            detach_app(project, docker.engine)
        elif current == claim.written:
            _put_route(project, edge, claim.before)
        else:
            return
    report(f"gave back {', '.join(claim.names)} on the shared edge: the failed `up` routes none of them")


def preflight(project: Project, docker: Docker, running: dict[str, ContainerInfo]) -> None:
    """Before `up` of an app with edge: shared changes anything: refuse what cannot work, naming the fix. The app's
    own Traefik of edge: own may run: engine/edge_move.py moves it onto the edge."""
    from .steps import check_ports  # steps.down calls detach_app: imported late, no cycle

    edge = edge_docker(docker.engine)
    state = edge_state(edge)
    if state.traefik is None or state.traefik.status != "running":
        if state.traefik is None:
            # The edge will publish them; the app's own Traefik (edge: own before) may hold them: it hands them over.
            check_ports(project, running, docker)
        return
    refuse_other_settings(project, state)
    if state.running:
        _refuse_conflict(project, read_route_files(edge))  # again under the edge lock when it claims (claim_domains)


def refuse_other_settings(project: Project, state: EdgeState) -> None:
    """Refuse an app whose edge settings differ from the running edge's, naming every differing key and both values."""
    mismatch = settings_mismatch(project.config.name, edge_settings(project), state.settings or {}, state.created_by)
    if mismatch is not None:
        raise UserError(mismatch)


def ensure_edge(
    project: Project, engine: Engine | None, deadline: Deadline, report: Progress, on_line: LineSink | None = None
) -> Docker:
    """The running edge, created (or started) with ``project``'s settings when it does not run. A running edge is
    never restarted: when its Traefik's definition differs from ``project``'s (an edge of an older layout, or one
    an older composekit rendered), engine/edge_upgrade.py hands over to a new Traefik beside it."""
    from .edge_upgrade import upgrade_edge
    from .steps import wait_healthy

    edge = edge_docker(engine)
    if edge_state(edge).running:
        upgrade_edge(project, engine, deadline, report, on_line)
        return edge
    report(
        f"starting the shared edge ({EDGE_PROJECT}: Traefik on ports {project.config.ports.http} and "
        f"{project.config.ports.https})"
    )
    with tempfile.TemporaryDirectory(prefix="composekit-edge-") as tmp:
        path = Path(tmp) / "compose.yaml"
        path.write_text(render_edge(project, migrate_req=edge.kernel_migrates_requests()), encoding="utf-8")
        files_edge = edge_docker(engine, [path])
        files_edge.up(on_line=on_line)
        write_edge_file(edge)
        wait_healthy(files_edge, [TRAEFIK, ROUTES], deadline)
    return edge


def connect_app(project: Project, edge: Docker, report: Progress = lambda _: None) -> None:
    """Join the edge's Traefik to the app's `web` network at traefik_address (the address the app trusts proxy
    headers from), unless it is there already: `docker network connect`, no restart."""
    state = edge_state(edge)
    owner = state.network_owner
    if owner is None:
        raise UserError(
            f"the shared edge ({EDGE_PROJECT}) has no Traefik container, so app {project.config.name} cannot be "
            "routed; `composekit up` (or `composekit edge up`) creates it"
        )
    network = app_network(project)
    if network in edge.container_networks(owner.name):
        return
    address = traefik_address(project.config)
    report(f"connecting the shared edge to {network} at {address}")
    edge.network_connect(network, owner.name, ip=address)


def detach_app(project: Project, engine: Engine | None, report: Progress = lambda _: None) -> None:
    """`down` of an app on the edge: its routes file removed, the edge off its network; the edge keeps running."""
    edge = edge_docker(engine)
    state = edge_state(edge)
    if state.running:
        edge.exec(_routes_container(edge), ["python3", "-I", "-c", _REMOVE, route_file(project.config)])
        report(f"removed {project.config.name}'s routes from the shared edge")
    owner = state.network_owner
    network = app_network(project)
    if owner is not None and network in edge.container_networks(owner.name):
        edge.network_disconnect(network, owner.name)
        report(f"disconnected the shared edge from {network}")


def edge_down(engine: Engine | None, *, force: bool, delete_acme: bool, report: Progress = lambda _: None) -> None:
    """Remove the edge's containers and network; refused while an app has a routes file on it unless ``force``.
    Its routes volume is kept; its ACME volume (the certificates) too unless ``delete_acme``."""
    edge = edge_docker(engine)
    state = edge_state(edge)
    apps = sorted(read_route_files(edge)) if state.running else []
    if apps and not force:
        raise UserError(
            f"the shared edge routes {len(apps)} app(s): {', '.join(apps)}; removing it takes them offline. Fix: "
            "`composekit down` each of them first, or `composekit edge down --force`. Nothing was changed."
        )
    for c in state.containers:
        report(f"removing {c.name}")
        edge.remove_now(c.name) if c.service == ROUTES else edge.stop_and_remove(c.name)
    network = f"{EDGE_PROJECT}_{EDGE_NETWORK}"
    if edge.network_exists(network):
        edge.remove_network(network)
    if delete_acme:
        volume = f"{EDGE_PROJECT}_acme"
        if edge.volume_mountpoint(volume) is not None:
            edge.remove_volume(volume)
            report(f"deleted {volume} (the certificates: the next edge requests them again)")


def edge_status(engine: Engine | None) -> dict[str, object]:
    """What `composekit edge status` shows: the edge's containers, the apps it routes (their domains) and the
    networks its Traefik is on."""
    from ..render.edge import claimed_names

    edge = edge_docker(engine)
    state = edge_state(edge)
    apps = read_route_files(edge) if state.running else {}
    traefik = state.traefik
    owner = state.network_owner
    return {
        "project": EDGE_PROJECT,
        "engine": edge.engine.describe(),
        "created_by": state.created_by if traefik is not None else None,
        "containers": [
            {"service": c.service, "name": c.name, "status": c.status, "health": c.health, "started_at": c.started_at}
            for c in state.containers
        ],
        "apps": {app: sorted(claimed_names(text)) for app, text in sorted(apps.items())},
        "networks": edge.container_networks(owner.name) if owner is not None else [],
        "settings": state.settings,
        "revision": state.revision,
    }


def edge_logs(engine: Engine | None, tail: int) -> str:
    edge = edge_docker(engine)
    traefik = edge_state(edge).traefik
    if traefik is None:
        raise UserError(f"the shared edge ({EDGE_PROJECT}) has no Traefik container on this engine")
    return edge.container_logs(traefik.name, tail)
