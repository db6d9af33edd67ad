"""The commands that start and stop a stack: up, down. Parse options, call the library, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..deploy import down as down_stack
from ..deploy import up as up_stack
from ..engine import swarm
from ..engine.docker import Docker
from ..engine.target import server_ip
from ..engine.wait import Deadline
from ..verify.smoke import SmokeOptions, parse_resolve
from .app import (
    NICE_DEFAULT,
    NiceOption,
    app,
    current_project,
    docker_line,
    engine_for,
    err,
    out,
    progress,
    run,
    yield_cpu,
)
from .display import render_table, smoke_retrying

__all__ = ["down", "up"]


SWARM_DOWN_TIMEOUT = 120  # seconds for Swarm to stop the stack's tasks and remove its networks


@app.command()
def up(
    timeout: Annotated[
        float,
        typer.Option(help="Seconds the whole `up` may take (build, migration, health and routing waits share them)."),
    ] = 300,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not echo Docker's build and start output.")] = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke/--no-smoke", help="Run `composekit smoke` once the stack is healthy; a failed smoke exits 1."
        ),
    ] = True,
    smoke_wait: Annotated[
        float, typer.Option(min=0, help="Seconds smoke retries while Traefik obtains the certificate.")
    ] = 90,
    resolve: Annotated[
        str | None,
        typer.Option(
            metavar="DOMAIN:IP",
            help='For the smoke test: send requests to IP (as `composekit smoke --resolve`); "server": the '
            "address of the target engine's server.",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(metavar="PEM", help="For the smoke test: trust this CA file (private or test ACME CA)."),
    ] = None,
    break_lock: Annotated[
        bool,
        typer.Option("--break-lock", help="Remove the deploy lock a deploy that died left on the engine, then deploy."),
    ] = False,
    rollback_on_error: Annotated[
        bool | None,
        typer.Option(
            "--rollback-on-error/--no-rollback-on-error",
            help="Switch back to the previous release when a probe fails during the switch "
            "(default: releases/rollback_on_error, false).",
            show_default=False,
        ),
    ] = None,
    build_local: Annotated[
        bool,
        typer.Option(
            "--build-local",
            help="Build the app image with this machine's Docker engine and ship it to the target engine "
            "(docker save | load over its connection, no registry); prints the bytes sent.",
        ),
    ] = False,
    nice: NiceOption = NICE_DEFAULT,
) -> None:
    """Render, build the app image, run the migration, start the stack, wait until it is healthy, smoke-test it."""

    def do() -> bool:
        yield_cpu(nice)
        project = current_project()
        with engine_for(project, probes=True) as engine:
            if engine.is_remote:
                progress(f"engine: {engine.describe()}")
            given = f"{project.config.domain}:{server_ip(engine)}" if resolve == "server" else resolve
            options = SmokeOptions.from_config(
                project.config, project.root, resolve=parse_resolve(given) if given else None, ca_file=ca_file
            )
            result = up_stack(
                project,
                timeout=timeout,
                report=progress,
                on_line=None if quiet else docker_line,
                smoke_wait=smoke_wait if smoke else None,
                smoke_options=options,
                on_smoke_retry=smoke_retrying,
                engine=engine,
                build_local=build_local,
                break_lock=break_lock,
                rollback_on_error=rollback_on_error,
            )
        out.print(result.url)
        if result.smoke is not None:
            render_table(result.smoke, err)  # stderr: stdout carries only the URL
            if not result.smoke.passed:
                progress("the stack is up, but smoke failed (`composekit up --no-smoke` skips it)")
        return result.passed

    if not run(do):
        raise typer.Exit(1)


@app.command()
def down(
    delete_volumes: Annotated[
        bool,
        typer.Option(
            "--delete-volumes",
            help="Also delete the stack's volumes: the app's data AND acme.json (certificates are re-requested, "
            "and Let's Encrypt allows 5 duplicate certificates a week).",
        ),
    ] = False,
) -> None:
    """Stop and remove the stack's containers. Volumes (data, acme.json) are kept unless --delete-volumes."""

    def do() -> None:
        project = current_project()
        with engine_for(project) as engine:
            if project.config.mode == "swarm":
                docker = Docker(project.config.name, [], engine=engine)
                swarm.require_manager(docker)
                volumes = swarm.down(docker, project.config.name, delete_volumes, Deadline(SWARM_DOWN_TIMEOUT))
            else:
                volumes = down_stack(project, delete_volumes=delete_volumes, on_line=docker_line, engine=engine)
        if volumes and delete_volumes:
            progress(f"deleted volumes: {', '.join(volumes)}")
        elif volumes:
            progress(f"kept volumes: {', '.join(volumes)} (--delete-volumes removes them)")
        progress("stack is down")

    run(do)
