"""The commands on a stack's recorded releases: releases (list them), rollback (switch back to one)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ..deploy import list_releases
from ..deploy import rollback as rollback_stack
from ..engine.releases import require_compose_mode
from ..engine.steps import docker_for
from .app import (
    NICE_DEFAULT,
    NiceOption,
    app,
    current_project,
    engine_for,
    out,
    progress,
    run,
    yield_cpu,
)

__all__ = ["releases", "rollback"]


@app.command()
def releases(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """The releases recorded on the engine, oldest first, which one serves, and the migration state each left."""

    def do() -> None:
        project = current_project()
        require_compose_mode(project, "releases")
        with engine_for(project) as engine:
            rows = list_releases(project, docker_for(project, engine))
        if as_json:
            doc = [
                {
                    "id": r.release.id,
                    "created": r.release.created,
                    "image": r.release.image,
                    "tag": r.tag,
                    "current": r.current,
                    "migration": r.release.migration,
                }
                for r in rows
            ]
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return
        if not rows:
            progress("no release recorded yet (`composekit up` records one)")
        for r in rows:
            mark = "*" if r.current else " "
            image = r.release.image.removeprefix("sha256:")[:12]
            out.print(
                f"{mark} {r.release.id:<20} {r.release.created}  {image}  {r.release.migration or '-'}", markup=False
            )

    run(do)


@app.command()
def rollback(
    release: Annotated[
        str | None, typer.Argument(help="Release id (or a unique prefix); default: the one before the serving one.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds the whole rollback may take.")] = 300,
    break_lock: Annotated[
        bool, typer.Option("--break-lock", help="Remove a deploy lock a deploy that died left on the engine.")
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Roll back even though the database was migrated since that release (refused anyway when "
            "migrate/backward_compatible is false).",
        ),
    ] = False,
    nice: NiceOption = NICE_DEFAULT,
) -> None:
    """Switch back to an earlier release with no failed request: no build, no migration (they are not reversed)."""

    def do() -> None:
        yield_cpu(nice)
        project = current_project()
        require_compose_mode(project, "rollback")
        with engine_for(project, probes=True) as engine:
            if engine.is_remote:
                progress(f"engine: {engine.describe()}")
            result = rollback_stack(
                project, release, timeout=timeout, report=progress, break_lock=break_lock, engine=engine, yes=yes
            )
        progress(f"release {result.release} serving; switch took {result.switch_seconds:.1f}s")

    run(do)
