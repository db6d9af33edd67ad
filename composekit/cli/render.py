"""`composekit render`: write the stack's files, print compose.yaml for reading, or --check them against the config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config.project import Project
from ..errors import UserError
from ..render.stack import check_stack, render_stack, write_stack
from ..render.swarm_app import swarm_warnings
from .app import (
    app,
    current_project,
    err,
    run,
    state,
)

__all__ = ["render"]


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
            project = current_project(Path(out_dir) if out_dir else None)
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
            project = current_project()
            rendered = render_stack(project)
            sys.stdout.write(_for_reading(project).replace("compose.yaml", rendered.main_file) + rendered.main)
            err.print(
                f"note: printed for reading; its relative paths resolve from {_shown(project.out_dir)}/ only. "
                "For a runnable stack run `composekit render` (writes it there with the files it refers to)",
                soft_wrap=True,
                markup=False,
            )
            return
        project = current_project(Path(out_dir) if out_dir else None)
        for warning in swarm_warnings(project.config):
            err.print(f"warning: {warning}", soft_wrap=True, markup=False)
        try:
            stack = write_stack(project, warn=lambda m: err.print(f"warning: {m}", soft_wrap=True, markup=False))
        except OSError as exc:
            raise UserError(_unwritable(project.out_dir, out_dir, exc)) from None
        for name in stack.files:
            err.print(f"wrote {project.out_dir / name}", markup=False, soft_wrap=True)

    run(do)
