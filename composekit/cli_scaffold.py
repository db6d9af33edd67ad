"""CLI commands that scaffold a project: `init` and `schema` (registered on composekit.cli.app)."""

from __future__ import annotations
