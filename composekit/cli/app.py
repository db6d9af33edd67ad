"""The typer app every CLI module registers its commands on, its global -c option, its consoles, the one error
handler and main()."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from ..errors import ConfigError, UserError

__all__ = ["app", "err", "main", "out", "run", "state"]

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
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None


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
) -> None:
    state.config_files = tuple(config or ())


def main() -> None:
    app()
