"""CLI commands that check a deployment: `smoke` and `doctor` (registered on composekit.cli.app)."""

from __future__ import annotations
