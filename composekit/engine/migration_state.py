"""Which command reads the database's migration state: render/migration_state.py (pure, and needed by render too: a
scheduled backup compares the restored Alembic state with the recorded one only when that state is Alembic's)."""

from __future__ import annotations

from ..render.migration_state import StateCommand, parse_alembic_current, state_command

__all__ = ["StateCommand", "parse_alembic_current", "state_command"]
