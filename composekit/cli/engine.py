"""`composekit engine configure`: merge the engine settings for servers into daemon.json (registered on the app)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..engine.docker import Docker
from ..engine.settings import (
    DEFAULT_DAEMON_JSON,
    EngineSettings,
    apply_advice,
    local_daemon_for,
    plan_configure,
    read_daemon_json,
    read_engine_settings,
    skip_wanted,
    write_daemon_json,
)
from ..errors import DockerError, UserError
from .app import app, err, run

__all__ = ["engine_app"]

engine_app = typer.Typer(help="The Docker engine's own settings for servers (daemon.json).", no_args_is_help=True)
app.add_typer(engine_app, name="engine")


def _live_settings() -> EngineSettings | None:
    """The running engine's settings, or None when no engine answers (the file can be prepared before)."""
    try:
        info = Docker("composekit", []).engine_info()
    except DockerError:
        return None
    return read_engine_settings(info, local_daemon_for(info))


@engine_app.command("configure")
def configure_command(
    file: Annotated[Path, typer.Option("--file", "-f", help="The daemon.json to merge into.")] = Path(
        DEFAULT_DAEMON_JSON
    ),
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            metavar="KEY",
            help="Leave this setting as it is: live-restore, userland-proxy or log-opts. Repeatable.",
        ),
    ] = None,
    log_max_size: Annotated[str, typer.Option(help="log-opts max-size for json-file logs.")] = "10m",
    log_max_file: Annotated[str, typer.Option(help="log-opts max-file for json-file logs.")] = "3",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff only; write nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking.")] = False,
) -> None:
    """Set live-restore, userland-proxy=false and default log rotation in daemon.json on THIS machine.

    Shows the diff, keeps a timestamped backup, keeps every other key, and says how to apply it. Refuses
    live-restore on a Swarm node (the engine refuses Swarm with it) and a daemon.json it cannot read.
    """

    def do() -> None:
        wanted = skip_wanted(skip or [], log_max_size, log_max_file)
        settings = _live_settings()
        if settings is None:
            err.print(
                "[bold]composekit:[/] no Docker engine answers: Swarm membership and dockerd's flags are not checked",
                soft_wrap=True,
            )
        merge = plan_configure(file, read_daemon_json(file), wanted, settings)
        for note in merge.notes:
            err.print(f"[bold]composekit:[/] {escape(note)}", soft_wrap=True, markup=True)
        if not merge.changed:
            err.print(f"{file} already has these settings; nothing to write", soft_wrap=True, markup=False)
            return
        sys.stdout.write(merge.diff())
        daemon = settings.daemon if settings is not None else None
        if daemon is not None and Path(daemon.config_file) != file:
            err.print(
                "[bold]composekit:[/] "
                + escape(
                    f"note: dockerd (pid {daemon.pid}) reads {daemon.config_file}, not {file}: it takes this file "
                    f"only when started with --config-file {file}"
                ),
                soft_wrap=True,
            )
        if dry_run:
            err.print(f"dry run: {file} was not written", soft_wrap=True, markup=False)
            return
        if not yes:
            if not sys.stdin.isatty():
                raise UserError(
                    f"engine configure: not writing {file} without a terminal to ask on: "
                    "run with --yes (or --dry-run to see the diff only)"
                )
            if not typer.confirm(f"Write {file}?", default=False, err=True):
                err.print(f"{file} was not written", soft_wrap=True, markup=False)
                return
        try:
            backup = write_daemon_json(merge, file)
        except OSError as exc:
            raise UserError(f"{file}: cannot write it ({exc.strerror}); it is left as it was") from None
        saved = f"; the previous file is {backup}" if backup else ""
        err.print(f"wrote {file}{saved}", soft_wrap=True, markup=False)
        err.print(apply_advice(merge, daemon), soft_wrap=True, markup=False)

    run(do)
