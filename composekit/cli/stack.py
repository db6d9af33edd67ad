"""The commands that drive a stack: render, up, down, status, logs, config. Parse options, call the library, print."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..config.project import Project, load_project
from ..deploy import down as down_stack
from ..deploy import list_releases
from ..deploy import rollback as rollback_stack
from ..deploy import status as stack_status
from ..deploy import up as up_stack
from ..engine import swarm
from ..engine.docker import Docker
from ..engine.releases import require_compose_mode
from ..engine.steps import docker_for, read_only_docker
from ..engine.target import server_ip
from ..engine.wait import Deadline
from ..errors import UserError
from ..render.stack import check_stack, render_stack, write_stack
from ..render.swarm import swarm_warnings
from ..verify.smoke import SmokeOptions, parse_resolve
from .app import app, engine_for, err, out, run, state
from .display import render_table, smoke_retrying, status_table, swarm_status_table

__all__ = ["down", "logs", "render", "show_config", "status", "up"]


SWARM_DOWN_TIMEOUT = 120  # seconds for Swarm to stop the stack's tasks and remove its networks


# `up` and `rollback` lower their CPU priority (and their docker, compose and ssh children's) by default: on a small
# server the deploy's own processes then yield the CPU to the stack that serves requests while they run.
NICE_DEFAULT = 10
NiceOption = Annotated[
    int,
    typer.Option(
        min=0,
        max=19,
        help="Lower this command's CPU priority (and its docker/compose/ssh children's) by N while it deploys, so "
        "the serving stack keeps its latency on a small server (the engine's own build is not affected); 0 keeps it.",
    ),
]


def yield_cpu(increment: int) -> None:
    """Lower this process's CPU priority by ``increment`` (nice), which the processes it starts inherit."""
    if increment > 0:
        os.nice(increment)


def _project(out_dir: Path | None = None) -> Project:
    return load_project(state.config_files, out_dir=out_dir)


def _progress(message: str) -> None:
    err.print(f"[bold]composekit:[/] {escape(message)}", soft_wrap=True)


def _docker_line(line: str) -> None:
    if line.strip():
        err.print(f"  {line}", markup=False, style="dim")


def _shown(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return path.as_posix()


def _for_reading(project: Project) -> str:
    """The header of `render --out -`: a single stream cannot carry traefik.yml, gunicorn.conf.py and the
    Dockerfile the compose file mounts and builds with, so what it prints is for reading, not for running."""
    where = _shown(project.out_dir)
    return (
        f"# For reading: relative paths below resolve from {where}/, where `composekit render` writes this file\n"
        f"# together with the files it refers to. To run the stack use {where}/compose.yaml (or `composekit up`).\n"
    )


def _unwritable(out: Path, given: str | None, exc: OSError) -> str:
    """render's one-line error for an output directory it cannot write: the path, why, and what to do."""
    where = f"--out {given}" if given else f"the output directory {_shown(out)}"
    if out.exists() and not out.is_dir():
        return f"render: {where} is a file, not a directory: name a directory (it is created if missing)"
    path = exc.filename if exc.filename is not None else out
    fix = (
        "name a directory you can write to with --out DIR"
        if given
        else "make it writable, or name another with --out DIR"
    )
    return f"render: cannot write {path} ({exc.strerror or exc}): {fix}"


@app.command()
def render(
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help='Output directory (default .composekit/ next to the config); "-" prints compose.yaml to stdout.',
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing: compare the files on disk with a fresh render; exit 1 with a diff if they differ.",
        ),
    ] = False,
) -> None:
    """Write the compose file and the files beside it. Deterministic: same config, same bytes."""

    def do() -> None:
        if check:
            if out_dir == "-":
                raise UserError(
                    "render: --check compares the files in an output directory; it cannot be used with --out -"
                )
            project = _project(Path(out_dir) if out_dir else None)
            diff = check_stack(project)
            if diff:
                sys.stdout.write(diff)
                options = "".join(f" -c {f}" for f in state.config_files)
                fix = f"composekit{options} render" + (f" --out {out_dir}" if out_dir else "")
                raise UserError(
                    f"render --check: the files in {project.out_dir} differ from what {project.source} renders "
                    f"(diff above); run `{fix}` and commit the result"
                )
            err.print(f"{project.out_dir} is up to date with {project.source}", soft_wrap=True, markup=False)
            return
        if out_dir == "-":
            project = _project()
            rendered = render_stack(project)
            sys.stdout.write(_for_reading(project).replace("compose.yaml", rendered.main_file) + rendered.main)
            err.print(
                f"note: printed for reading; its relative paths resolve from {_shown(project.out_dir)}/ only. "
                "For a runnable stack run `composekit render` (writes it there with the files it refers to)",
                soft_wrap=True,
                markup=False,
            )
            return
        project = _project(Path(out_dir) if out_dir else None)
        for warning in swarm_warnings(project.config):
            err.print(f"warning: {warning}", soft_wrap=True, markup=False)
        try:
            stack = write_stack(project, warn=lambda m: err.print(f"warning: {m}", soft_wrap=True, markup=False))
        except OSError as exc:
            raise UserError(_unwritable(project.out_dir, out_dir, exc)) from None
        for name in stack.files:
            err.print(f"wrote {project.out_dir / name}", markup=False, soft_wrap=True)

    run(do)


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
        project = _project()
        with engine_for(project, probes=True) as engine:
            if engine.is_remote:
                _progress(f"engine: {engine.describe()}")
            given = f"{project.config.domain}:{server_ip(engine)}" if resolve == "server" else resolve
            options = SmokeOptions.from_config(
                project.config, project.root, resolve=parse_resolve(given) if given else None, ca_file=ca_file
            )
            result = up_stack(
                project,
                timeout=timeout,
                report=_progress,
                on_line=None if quiet else _docker_line,
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
                _progress("the stack is up, but smoke failed (`composekit up --no-smoke` skips it)")
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
        project = _project()
        with engine_for(project) as engine:
            if project.config.mode == "swarm":
                docker = Docker(project.config.name, [], engine=engine)
                swarm.require_manager(docker)
                volumes = swarm.down(docker, project.config.name, delete_volumes, Deadline(SWARM_DOWN_TIMEOUT))
            else:
                volumes = down_stack(project, delete_volumes=delete_volumes, on_line=_docker_line, engine=engine)
        if volumes and delete_volumes:
            _progress(f"deleted volumes: {', '.join(volumes)}")
        elif volumes:
            _progress(f"kept volumes: {', '.join(volumes)} (--delete-volumes removes them)")
        _progress("stack is down")

    run(do)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False) -> None:
    """Each service's container, state and health; for the app, its running worker processes."""

    def do() -> None:
        project = _project()
        if project.config.mode == "swarm":
            _swarm_status(project, as_json)
            return
        with engine_for(project) as engine:
            st = stack_status(project, engine=engine)
        if as_json:
            sys.stdout.write(json.dumps(st.as_dict(), indent=2) + "\n")
            return
        _progress(f"engine: {st.engine}")
        if not st.services:
            _progress(f"stack {st.name} is not running (`composekit up` starts it)")
            return
        out.print(status_table(st))
        for s in st.services:
            if s.note:
                _progress(f"{s.service}: {s.note}")

    run(do)


def _swarm_status(project: Project, as_json: bool) -> None:
    with engine_for(project) as engine:
        docker = Docker(project.config.name, [], engine=engine)
        swarm.require_manager(docker)
        st = swarm.swarm_status(docker, project.config.name, f"https://{project.config.domain}/")
    if as_json:
        sys.stdout.write(json.dumps(st.as_dict(), indent=2) + "\n")
        return
    _progress(f"engine: {st.engine}")
    if not st.services:
        _progress(f"stack {st.name} is not deployed (`composekit up` deploys it)")
        return
    out.print(swarm_status_table(st))


@app.command()
def logs(
    service: Annotated[str | None, typer.Argument(help="traefik, migrate or app (default: all).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[
        int | None, typer.Option(min=0, help="Only the last N lines of each service (0: only new lines, with -f).")
    ] = None,
) -> None:
    """Print the stack's logs."""

    def do() -> None:
        project = _project()
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
        project = _project()
        data: dict[str, Any] = project.config.redacted()
        sys.stdout.write(json.dumps(data, indent=2) + "\n")

    run(do)


@app.command()
def releases(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """The releases recorded on the engine, oldest first, which one serves, and the migration state each left."""

    def do() -> None:
        project = _project()
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
            _progress("no release recorded yet (`composekit up` records one)")
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
        project = _project()
        require_compose_mode(project, "rollback")
        with engine_for(project, probes=True) as engine:
            if engine.is_remote:
                _progress(f"engine: {engine.describe()}")
            result = rollback_stack(
                project, release, timeout=timeout, report=_progress, break_lock=break_lock, engine=engine, yes=yes
            )
        _progress(f"release {result.release} serving; switch took {result.switch_seconds:.1f}s")

    run(do)
