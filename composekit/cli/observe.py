"""The commands that look at a stack without changing it: status, logs, config."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ..config.project import Project
from ..deploy import status as stack_status
from ..engine import swarm
from ..engine.backup import list_backups
from ..engine.backup_manifest import age_text, latest_verified
from ..engine.docker import Docker
from ..engine.steps import read_only_docker
from ..engine.target import Engine
from ..errors import UserError
from .app import (
    app,
    current_project,
    engine_for,
    out,
    progress,
    run,
)
from .display import schedules_table, status_table, swarm_status_table

__all__ = ["logs", "show_config", "status"]


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False) -> None:
    """Each service's container, state and health; for the app, its running worker processes; each schedule's last
    run (exit code, last output line) and next time."""

    def do() -> None:
        project = current_project()
        if project.config.mode == "swarm":
            _swarm_status(project, as_json)
            return
        with engine_for(project) as engine:
            st = stack_status(project, engine=engine)
            backup = _backup_line(project, engine) if st.services else None
        if as_json:
            doc = st.as_dict()
            if backup is not None:
                doc["backup"] = backup
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return
        progress(f"engine: {st.engine}")
        if not st.services:
            progress(f"stack {st.name} is not running (`composekit up` starts it)")
            return
        out.print(status_table(st))
        for s in st.services:
            if s.note:
                progress(f"{s.service}: {s.note}")
        if st.schedules:
            out.print(schedules_table(st))
            for row in st.schedules:
                if row.note:
                    progress(f"schedule {row.name}: {row.note}")
        if backup is not None:
            progress(backup)

    run(do)


def _backup_line(project: Project, engine: Engine) -> str | None:
    """The last verified backup and its age; None when the stack has no backups and no backups: section."""
    found = list_backups(project.config, Docker(project.config.name, [], engine=engine))
    if not found and project.config.backups is None:
        return None
    latest = latest_verified(found)
    if latest is None:
        return "last verified backup: none (`composekit backup` makes one)"
    return f"last verified backup: {latest.id}, {age_text(latest, datetime.now(UTC))}"


def _swarm_status(project: Project, as_json: bool) -> None:
    with engine_for(project) as engine:
        docker = Docker(project.config.name, [], engine=engine)
        swarm.require_manager(docker)
        st = swarm.swarm_status(docker, project.config.name, f"https://{project.config.domain}/")
    if as_json:
        sys.stdout.write(json.dumps(st.as_dict(), indent=2) + "\n")
        return
    progress(f"engine: {st.engine}")
    if not st.services:
        progress(f"stack {st.name} is not deployed (`composekit up` deploys it)")
        return
    out.print(swarm_status_table(st))


@app.command()
def logs(
    service: Annotated[
        str | None,
        typer.Argument(help="traefik, routes, files, migrate, app, db, or a process or accessory (default: all)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[
        int | None, typer.Option(min=0, help="Only the last N lines of each service (0: only new lines, with -f).")
    ] = None,
) -> None:
    """Print the stack's logs."""

    def do() -> None:
        project = current_project()
        if project.config.mode == "swarm":
            _swarm_logs(project, service, tail, follow)
            return
        with engine_for(project) as engine, read_only_docker(project, engine) as docker:
            try:
                for line in docker.follow_logs([service] if service else [], tail, follow):
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
            except KeyboardInterrupt:
                pass

    run(do)


def _swarm_logs(project: Project, service: str | None, tail: int | None, follow: bool) -> None:
    """`docker service logs` of one service of the stack, or of each in turn (--follow needs one service)."""
    stack = project.config.name
    if service is None and follow:
        raise UserError("logs --follow in mode: swarm follows one service: name it (`composekit logs -f app`)")
    with engine_for(project) as engine:
        docker = Docker(stack, [], engine=engine)
        names = (
            [f"{stack}_{service}"]
            if service
            else sorted(str(raw["Spec"]["Name"]) for raw in docker.stack_services(stack))
        )
        try:
            for line in docker.follow_service_logs(names, tail, follow):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


@app.command("config")
def show_config() -> None:
    """Print the merged, validated configuration as JSON; anything credential-like shows as <redacted>."""

    def do() -> None:
        project = current_project()
        data: dict[str, Any] = project.config.redacted()
        sys.stdout.write(json.dumps(data, indent=2) + "\n")

    run(do)
