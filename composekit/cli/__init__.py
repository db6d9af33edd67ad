"""The `composekit` command: typer commands that parse options, call the library and print."""

from __future__ import annotations

from .stack import app, main

__all__ = ["app", "main"]
