"""`composekit edge status|logs|up|down`: the shared edge (edge: shared) on the config's engine."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ..engine import edge
from ..engine.edge_lock import edge_lock
from ..engine.edge_upgrade import upgrade_edge
from ..engine.wait import Deadline
from .app import app, current_project, docker_line, engine_for, out, progress, run

__all__ = ["edge_app"]

edge_app = typer.Typer(
    help="The shared edge: one Traefik per engine routing every app with edge: shared.", no_args_is_help=True
)
app.add_typer(edge_app, name="edge")


@edge_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False) -> None:
    """The edge's containers, the apps it routes with their domains, the networks it is on."""

    def do() -> None:
        project = current_project()
        with engine_for(project) as engine:
            st = edge.edge_status(engine)
        if as_json:
            sys.stdout.write(json.dumps(st, indent=2) + "\n")
            return
        progress(f"engine: {st['engine']}")
        containers = st["containers"]
        if not containers:
            progress("the shared edge is not running (`composekit up` of an app with edge: shared starts it)")
            return
        assert isinstance(containers, list)
        for c in containers:
            out.print(f"{c['service']}\t{c['name']}\t{c['status']}\t{c['health'] or '-'}\tstarted {c['started_at']}")
        apps = st["apps"]
        assert isinstance(apps, dict)
        for name, domains in apps.items():
            out.print(f"app {name}: {', '.join(domains)}")
        if not apps:
            progress("no app is routed by the edge")
        progress(f"networks: {', '.join(st['networks'])}")  # type: ignore[arg-type]

    run(do)


@edge_app.command("logs")
def logs(tail: Annotated[int, typer.Option("--tail", help="Lines from the end.")] = 100) -> None:
    """Traefik's log of the shared edge."""

    def do() -> None:
        project = current_project()
        with engine_for(project) as engine:
            sys.stdout.write(edge.edge_logs(engine, tail) + "\n")

    run(do)


@edge_app.command("up")
def up(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for it to be healthy.")] = 120,
) -> None:
    """Create or start the shared edge with this config's ports, ACME settings and Traefik image (`up` of an app
    does it too); a running edge whose Traefik differs (image, static options) is upgraded with no request lost: the
    new Traefik starts beside the old one, which is drained and stopped."""

    def do() -> None:
        project = current_project()
        with engine_for(project) as engine:
            docker = edge.edge_docker(engine)
            state = edge.edge_state(docker)
            if state.running:
                with edge_lock(project, docker, "edge up", report=progress):
                    took = upgrade_edge(project, engine, Deadline(timeout), progress, docker_line)
                if took is None:
                    progress(
                        f"the shared edge is running and up to date (revision {state.revision}, created by app "
                        f"{state.created_by}); left as it is"
                    )
                return
            with edge_lock(project, docker, "edge up", report=progress):
                edge.ensure_edge(project, engine, Deadline(timeout), progress, docker_line)
        progress("the shared edge is running")

    run(do)


@edge_app.command("down")
def down(
    force: Annotated[bool, typer.Option("--force", help="Remove it even while apps are routed by it.")] = False,
    delete_acme: Annotated[
        bool, typer.Option("--delete-acme", help="Also delete its ACME volume (the certificates).")
    ] = False,
) -> None:
    """Remove the shared edge (refused while apps use it unless --force); its ACME volume is kept unless
    --delete-acme."""

    def do() -> None:
        project = current_project()
        with engine_for(project) as engine, edge_lock(project, edge.edge_docker(engine), "edge down", report=progress):
            edge.edge_down(engine, force=force, delete_acme=delete_acme, report=progress)
        progress("the shared edge is down")

    run(do)
