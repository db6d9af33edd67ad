"""Moving a stack onto the shared edge: the first `up` after its composekit.yaml changed from edge: own to edge: shared.

Everything is prepared while the stack's own Traefik still serves: the edge's containers created (not started), its
ACME storage merged with the stack's own (engine/acme_merge.py: nothing of either side lost, both originals backed
up in the edge's volume under /acme/backups, the stack's own `acme` volume never written to or removed) and the app's
routes file written into the edge's directory, routing the release that serves now. Then the ports change hands:
the own Traefik stopped, the edge's joined to the app's network at the own Traefik's address and started, and the
time until it routes the app on the public port is the gap reported. Should the edge not answer, the own Traefik is
started again (rollback). Once moved, the own Traefik's container is removed and a marker in the edge's routes
volume records the move, so a later `up` carries nothing again.

Moving back (edge: shared -> edge: own) is refused with the steps to take (refuse_move_back)."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config.project import Project
from ..errors import UserError
from ..render.edge import EDGE_PROJECT, HOLDER, domain_conflict, render_edge
from ..render.routes_volume import ROUTES, ROUTES_DIR
from ..render.traefik import routes_file
from .acme_merge import AcmeMerge, merge_acme
from .docker import ContainerInfo, Docker, LineSink
from .edge import TRAEFIK, app_network, connect_app, edge_docker, edge_state, read_route_files, write_route
from .probes import wait_answer
from .routes_volume import WRITE_FILE, new_generation, read_file
from .wait import Deadline, Progress

__all__ = ["MovePlan", "MoveResult", "move_onto_edge", "move_plan", "refuse_move_back"]

EDGE_ACME = f"{EDGE_PROJECT}_acme"
BACKUPS = "/acme/backups"
# The longest the ports may stay unanswered before the move is rolled back (the edge starts in about a second).
ANSWER_TIMEOUT = 30.0

# Runs in a helper container with the stack's own `acme` volume at /old and the edge's at /edge (both read-only):
# each acme.json's text and sha256, or null when absent.
_READ = (
    "import hashlib, json, os\n"
    "out = {}\n"
    "for key in ('old', 'edge'):\n"
    "    path = '/' + key + '/acme.json'\n"
    "    if os.path.exists(path):\n"
    "        data = open(path, 'rb').read()\n"
    "        out[key] = {'text': data.decode(), 'sha256': hashlib.sha256(data).hexdigest()}\n"
    "    else:\n"
    "        out[key] = None\n"
    "print(json.dumps(out))\n"
)
# Runs with /old read-only and /edge read-write: unless either acme.json changed since it was read (prints
# 'changed'), copies both into /edge/backups (0600) and renames the merged text (the arguments from the 6th on,
# joined) over /edge/acme.json (0600: Traefik refuses any other mode).
_WRITE = (
    "import hashlib, os, sys\n"
    "stamp, app, old_sha, edge_sha = sys.argv[1:5]\n"
    "text = ''.join(sys.argv[5:]).encode()\n"
    "def sha(path):\n"
    "    return hashlib.sha256(open(path, 'rb').read()).hexdigest() if os.path.exists(path) else '-'\n"
    "if sha('/old/acme.json') != old_sha or sha('/edge/acme.json') != edge_sha:\n"
    "    print('changed')\n"
    "    sys.exit(0)\n"
    "def put(path, data):\n"
    "    tmp = os.path.join(os.path.dirname(path), '.' + os.path.basename(path) + '.tmp')\n"
    "    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n"
    "    with os.fdopen(fd, 'wb') as f:\n"
    "        f.write(data)\n"
    "        f.flush()\n"
    "        os.fsync(f.fileno())\n"
    "    os.chmod(tmp, 0o600)\n"
    "    os.rename(tmp, path)\n"
    "os.makedirs('/edge/backups', mode=0o700, exist_ok=True)\n"
    "for src, name in (('/edge/acme.json', 'edge'), ('/old/acme.json', app)):\n"
    "    if os.path.exists(src):\n"
    "        put(f'/edge/backups/acme.json.{stamp}.{name}', open(src, 'rb').read())\n"
    "put('/edge/acme.json', text)\n"
    "print('written')\n"
)
_CHUNK = 60_000  # one argument stays far below the kernel's 128 KiB limit per argument


def _marker(app: str) -> str:
    """The edge routes volume's record that ``app`` moved onto the edge (Traefik reads .yml files only)."""
    return f"{ROUTES_DIR}/.moved-{app}.json"


@dataclass(frozen=True)
class MovePlan:
    """What a stack leaves behind from edge: own: its Traefik's container (running or not), its ACME volume."""

    old_traefik: ContainerInfo | None
    old_volume: str | None


@dataclass(frozen=True)
class MoveResult:
    gap: float | None  # seconds the public ports were unanswered; None when no Traefik was stopped
    merge: AcmeMerge | None
    backups: str


def move_plan(project: Project, docker: Docker, before: dict[str, ContainerInfo]) -> MovePlan | None:
    """What an `up` with edge: shared may have to carry onto the edge; None for a stack that never had its own."""
    old = before.get(TRAEFIK)
    volume = f"{project.config.name}_acme"
    has_volume = docker.volume_mountpoint(volume) is not None
    if old is None and not has_volume:
        return None
    return MovePlan(old, volume if has_volume else None)


def refuse_move_back(project: Project, docker: Docker) -> None:
    """`up` of a stack with edge: own whose app the running shared edge still routes: refused, naming the steps."""
    edge = edge_docker(docker.engine)
    state = edge_state(edge)
    if not state.running:
        return
    name = project.config.name
    if name not in read_route_files(edge):
        return
    raise UserError(
        f"edge: own: app {name} is on the shared edge ({EDGE_PROJECT} routes it), and moving a stack off the edge "
        "is not automatic. Fix: either set edge: shared again, or `composekit down` (removes its routes from the edge; "
        "volumes are kept), `composekit edge down` once no other app uses the edge (it holds the ports), then "
        "`composekit up` (its own Traefik starts with the certificates of its own acme volume, as they were before "
        "the move; the edge's copy stays in the volume composekit-edge_acme). Nothing was changed."
    )


def _read_acme(project: Project, docker: Docker, plan: MovePlan) -> dict[str, dict[str, str] | None]:
    volumes = {EDGE_ACME: ("/edge", "ro")}
    if plan.old_volume is not None:
        volumes[plan.old_volume] = ("/old", "ro")
    found: dict[str, dict[str, str] | None] = json.loads(
        docker.run_python_in_volumes(project.config.images.python, _READ, [], volumes)
    )
    return found


def _carry_acme(project: Project, docker: Docker, plan: MovePlan, stamp: str) -> AcmeMerge | None:
    """Merge the stack's own ACME storage into the edge's (read, merged here, written back unless either side
    changed meanwhile: then again, three times at most). None when the stack's own storage is empty."""
    name = project.config.name
    for _ in range(3):
        found = _read_acme(project, docker, plan)
        old, edge = found.get("old"), found.get("edge")
        if old is None or not old["text"].strip():
            return None
        merged = merge_acme(
            edge["text"] if edge else None,
            old["text"],
            f"the shared edge's acme.json (volume {EDGE_ACME})",
            f"app {name}'s own acme.json (volume {plan.old_volume})",
        )
        chunks = [merged.text[i : i + _CHUNK] for i in range(0, len(merged.text), _CHUNK)]
        volumes = {EDGE_ACME: ("/edge", "rw")}
        if plan.old_volume is not None:
            volumes[plan.old_volume] = ("/old", "ro")
        args = [stamp, name, old["sha256"], edge["sha256"] if edge else "-", *chunks]
        said = docker.run_python_in_volumes(project.config.images.python, _WRITE, args, volumes)
        if said.strip() == "written":
            return merged
    raise UserError(
        f"the ACME storage of app {name} or of the shared edge kept changing while it was being merged (a Traefik "
        "renewing certificates?), so nothing was written. Nothing was changed. Fix: run `composekit up` again"
    )


def _prepare_edge(files_edge: Docker, on_line: LineSink | None) -> None:
    """The edge's network, volumes and containers created; its routes container running, its Traefik not started."""
    files_edge.compose_create(on_line)
    routes = next(c for c in files_edge.containers() if c.service == ROUTES)
    if routes.status != "running":
        files_edge.compose_start([ROUTES])


def _wait_routes_container(edge: Docker, deadline: Deadline) -> None:
    def observe() -> bool:
        return any(c.service == ROUTES and c.status == "running" for c in edge.containers())

    while not observe():
        if deadline.remaining() <= 0:
            raise UserError(
                f"the shared edge's {ROUTES} container did not start; `composekit edge status` shows it. Nothing of "
                f"app {edge.project_name} was changed"
            )
        time.sleep(0.1)


def move_onto_edge(
    project: Project,
    docker: Docker,
    plan: MovePlan,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None = None,
) -> MoveResult | None:
    """Carry the stack's own Traefik's certificates and ports onto the shared edge (the module's docstring);
    None when there is nothing to carry (it moved before)."""
    with tempfile.TemporaryDirectory(prefix="composekit-edge-") as tmp:
        path = Path(tmp) / "compose.yaml"
        migrate_req = edge_docker(docker.engine).kernel_migrates_requests()
        path.write_text(render_edge(project, migrate_req=migrate_req), encoding="utf-8")
        return _move(project, docker, edge_docker(docker.engine, [path]), plan, deadline, report, on_line)


def _move(
    project: Project,
    docker: Docker,
    edge: Docker,
    plan: MovePlan,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
) -> MoveResult | None:
    """move_onto_edge, with ``edge`` on the edge's compose file as this app renders it."""
    config = project.config
    state = edge_state(edge)
    edge_running = state.traefik is not None and state.traefik.status == "running"
    if not edge_running:
        report(f"preparing the shared edge ({EDGE_PROJECT}) while app {config.name}'s own Traefik still serves")
        _prepare_edge(edge, on_line)
        _wait_routes_container(edge, deadline)
    old = plan.old_traefik
    if old is None and read_file(edge, _marker(config.name), "null").strip() != "null":
        return None  # moved before: the own volume is kept, never carried twice
    # The caller holds the edge lock: no other app claims a name between this check and the routes file's write.
    conflict = domain_conflict(config, read_route_files(edge))
    if conflict is not None:
        raise UserError(conflict)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    traefik = edge_state(edge).traefik
    assert traefik is not None  # created above, or running
    started = time.monotonic()
    if edge_running:
        # Traefik keeps its ACME storage in memory and rewrites it: merged only while stopped.
        report(f"stopping the shared edge's Traefik to merge app {config.name}'s certificates into its storage")
        edge.stop_container(traefik.name)
    try:
        merged = _carry_acme(project, docker, plan, stamp)
    except BaseException:
        if edge_running:
            edge.start_container(traefik.name)
        raise
    if merged is not None:
        report(f"merged app {config.name}'s ACME storage into the edge's: {merged.summary()}")
    serving = [c.name for c in docker.containers() if c.service == "app" and c.status == "running"]
    generation = new_generation() if serving else None
    write_route(project, edge, routes_file(config, generation or new_generation(), serving, serving), held=True)
    running_old = old is not None and old.status == "running"
    if not edge_running:
        started = time.monotonic()
    if running_old:
        assert old is not None
        report(f"handing ports {config.ports.http}/{config.ports.https} over: stopping {old.name}")
        docker.stop_container(old.name)
    if edge_running:
        edge.start_container(traefik.name)  # started before: its configs are in it
    else:
        # The holder publishes the ports and owns the network namespace Traefik runs in: started first.
        edge.compose_start([HOLDER, TRAEFIK])
    # After its start: connected before, the app's network may become the one its published ports lead to.
    connect_app(project, edge)
    took, last = wait_answer(project, generation, min(ANSWER_TIMEOUT, max(deadline.remaining(), 1)), docker.engine)
    gap = time.monotonic() - started
    if took is None:
        seen = next((c for c in edge.containers() if c.name == traefik.name), None)
        state_said = f"{seen.status}, health {seen.health or 'n/a'}" if seen is not None else "gone"
        logs = "\n".join(f"    {line}" for line in edge.container_logs(traefik.name, 15).splitlines())
        _roll_back(project, docker, edge, traefik.name, old if running_old else None, edge_running, report)
        raise UserError(
            f"the shared edge did not route app {config.name} on port {config.ports.https} within {ANSWER_TIMEOUT:.0f} "
            f"s of taking the ports over (last answer: {last}); moved back: "
            + (f"{old.name} serves again" if running_old and old is not None else "the edge is as it was")
            + f". The merged certificates stay in volume {EDGE_ACME} (originals in {BACKUPS}); app {config.name}'s own "
            "acme volume is unchanged. Fix: `composekit edge logs` says why the edge did not answer; then "
            f"`composekit up` again\nThe edge's Traefik was {state_said}; its last log lines:\n{logs or '    (none)'}"
        )
    if old is not None:
        docker.remove_now(old.name)  # its volume stays
    record = {"app": config.name, "from_volume": plan.old_volume, "at": stamp, "gap_seconds": round(gap, 3)}
    edge.exec(
        next(c.name for c in edge.containers() if c.service == ROUTES and c.status == "running"),
        ["python3", "-I", "-c", WRITE_FILE, _marker(config.name), json.dumps(record)],
    )
    if running_old or edge_running:
        report(
            f"moved app {config.name} onto the shared edge: ports {config.ports.http}/{config.ports.https} were "
            f"unanswered for {gap:.2f} s (from stopping "
            + ("the edge's Traefik" if edge_running else "its own Traefik")
            + f" to the edge routing it on {config.ports.https})"
        )
    if merged is not None:
        report(
            f"backups of both acme.json before the merge: {EDGE_ACME}:{BACKUPS}/acme.json.{stamp}.*; "
            f"volume {plan.old_volume} is kept as it was"
        )
    return MoveResult(gap if (running_old or edge_running) else None, merged, f"{BACKUPS}/acme.json.{stamp}.*")


def _roll_back(
    project: Project,
    docker: Docker,
    edge: Docker,
    traefik: str,
    old: ContainerInfo | None,
    edge_was_running: bool,
    report: Progress,
) -> None:
    """The edge's Traefik off the ports and the app's network again, the own Traefik started (and a running edge's
    Traefik too, had it been stopped to merge)."""
    report(f"the shared edge did not answer: moving app {project.config.name} back to its own Traefik")
    edge.stop_container(traefik)
    owner = edge_state(edge).network_owner  # the holder (Traefik runs in its network namespace)
    network = app_network(project)
    if owner is not None and network in edge.container_networks(owner.name):
        edge.network_disconnect(network, owner.name)
    holder = edge_state(edge).holder
    if not edge_was_running and holder is not None:
        edge.stop_container(holder.name)  # it holds the ports the own Traefik needs back
    if old is not None:
        docker.start_container(old.name)
    if edge_was_running:
        edge.start_container(traefik)
