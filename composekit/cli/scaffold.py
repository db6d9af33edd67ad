"""CLI commands that scaffold a project: `init` and `schema` (registered on the app of cli/app.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .. import scaffold
from ..config.schema import schema_json
from .app import app, err, run

__all__ = ["init", "schema"]


def _ask(question: str, choices: list[str]) -> str:
    if choices:
        err.print(question, markup=False)
        for i, choice in enumerate(choices, start=1):
            err.print(f"  {i}. {choice}", markup=False)
        answer: str = typer.prompt("module (number or package.module:attribute)", default="1", err=True)
        return choices[int(answer) - 1] if answer.isdigit() and 1 <= int(answer) <= len(choices) else answer
    err.print(question, markup=False)
    chosen: str = typer.prompt("module", err=True)
    return chosen


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="The app's repository (default: the current directory).")] = Path(
        "."
    ),
    template: Annotated[
        str,
        typer.Option(help=f"Stack template from stacks/: {', '.join(scaffold.list_templates())}."),
    ] = scaffold.DEFAULT_TEMPLATE,
    module: Annotated[
        str | None, typer.Option(help='The ASGI app, "package.module:attribute" (default: found in the code).')
    ] = None,
    name: Annotated[str | None, typer.Option(help="Project name (default: the directory's name).")] = None,
    domain: Annotated[str | None, typer.Option(help="The server's DNS name (default: NAME.example.com).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist and would change.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be written; write nothing.")] = False,
) -> None:
    """Scaffold composekit.yaml, its JSON Schema, a Dockerfile and .dockerignore into a FastAPI repository.

    Into an empty directory, the template's example app too. Never overwrites a file without --force.
    """

    def do() -> None:
        ask = _ask if sys.stdin.isatty() else None
        plan = scaffold.plan_init(directory, template=template, module=module, name=name, domain=domain, ask=ask)
        for note in plan.notes:
            err.print(f"[bold]composekit:[/] {escape(note)}", markup=True, soft_wrap=True)
        result = scaffold.write_plan(plan, force=force, pretend=dry_run)
        verb = "would write" if dry_run else "wrote"
        for path in result.written:
            err.print(f"{verb} {directory / path}", markup=False, soft_wrap=True)
        for path in result.unchanged:
            err.print(f"unchanged {directory / path}", markup=False, soft_wrap=True)
        for path in result.kept:
            err.print(f"kept existing {directory / path}", markup=False, soft_wrap=True)
        err.print("next:")
        for step in plan.guidance:
            err.print(f"  - {step}", markup=False, soft_wrap=True)

    run(do)


@app.command()
def schema() -> None:
    """Print the JSON Schema of composekit.yaml (`composekit schema > composekit.schema.json`)."""
    run(lambda: sys.stdout.write(schema_json()))
