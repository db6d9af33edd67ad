"""The typer app every CLI module registers its commands on, its global -c option, its consoles, the one error
handler, main(), and what several commands share (the project, progress lines, --nice)."""

from __future__ import annotations

import codecs
import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..config.project import Project, load_project
from ..config.ssh_url import host_problem
from ..engine.docker import context_endpoint
from ..engine.target import Engine, choose_target, connect
from ..errors import ConfigError, SshError, UserError

__all__ = [
    "NICE_DEFAULT",
    "NiceOption",
    "app",
    "current_project",
    "docker_line",
    "engine_for",
    "err",
    "main",
    "out",
    "progress",
    "run",
    "state",
    "yield_cpu",
]

T = TypeVar("T")

app = typer.Typer(
    name="composekit",
    help="Deploy a FastAPI app to one server: composekit.yaml -> Traefik + ACME + Gunicorn/Uvicorn on Docker Compose.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


class _State:
    config_files: tuple[Path, ...] = ()
    host: str | None = None


state = _State()


def run(fn: Callable[[], T]) -> T:
    """The one error handler: a UserError is printed as-is and exits 1; anything else keeps its traceback."""
    try:
        return fn()
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"error: {problem}\n")
        raise typer.Exit(1) from None
    except UserError as exc:
        message = str(exc)
        # Every error names the engine the command used; an SSH error is one line that names it already.
        if exc.engine and f"engine: {exc.engine}" not in message and not isinstance(exc, SshError):
            message += f"\n  engine: {exc.engine}"
        sys.stderr.write(f"error: {message}\n")
        raise typer.Exit(1) from None


@contextmanager
def engine_for(project: Project, probes: bool = False) -> Iterator[Engine]:
    """The engine of this command (--host, the config's host:, DOCKER_HOST, the current context), connected for
    as long as the block runs: an ssh:// engine holds one SSH connection. ``probes``: the command probes the stack
    through Traefik's ports (up, rollback), through SSH when the server is not reachable from here."""
    source = " + ".join(p.name for p in project.config_files)
    target = choose_target(state.host, project.config.host, source, os.environ, context_endpoint)
    ports = (project.config.ports.http, project.config.ports.https) if probes else ()
    with connect(target, ports=ports) as engine:
        yield engine


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


def current_project(out_dir: Path | None = None) -> Project:
    """The project the -c options name (default ./composekit.yaml)."""
    return load_project(state.config_files, out_dir=out_dir)


def progress(message: str) -> None:
    err.print(f"[bold]composekit:[/] {escape(message)}", soft_wrap=True)


def docker_line(line: str) -> None:
    if line.strip():
        err.print(f"  {line}", markup=False, style="dim")


@app.callback()
def _main(
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default ./composekit.yaml). Repeat to merge files in order, later keys win.",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            "-H",
            # typer reads help as rich markup: escape() keeps "[user@]" and "[/path...]" from being tags.
            help=escape(
                "Docker engine to use: ssh://[user@]host[:port] (an SSH config alias works; a path after it, "
                "such as /run/user/1000/docker.sock, names another socket), unix:///path, tcp://host:port or a Docker "
                "context name. Default: host: in the config, then DOCKER_HOST, then the current Docker context."
            ),
        ),
    ] = None,
) -> None:
    if host is not None:
        problem = host_problem(host)
        if problem is not None:
            sys.stderr.write(f'error: --host: {problem}, got "{host}"\n')
            raise typer.Exit(2)
    state.config_files = tuple(config or ())
    state.host = host


def main() -> None:
    # Machine output (`render --out -`, --json, diffs) is UTF-8 like every file composekit writes, whatever the
    # locale: under LC_ALL=POSIX Python's stdout is ASCII and a non-ASCII config value would end in a traceback.
    if isinstance(sys.stdout, io.TextIOWrapper) and codecs.lookup(sys.stdout.encoding).name != "utf-8":
        sys.stdout.reconfigure(encoding="utf-8")
    app()
