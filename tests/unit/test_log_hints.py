"""The fixes read from a failed container's log (engine/log_hints.py)."""

from __future__ import annotations

import pytest

from composekit.engine.log_hints import quote_log, read_only_hint

# What a write to the read-only root prints, as a migration or an app started in it did.
EROFS = "OSError: [Errno 30] Read-only file system: '/app/sql_app.db'"
SQLITE = "sqlite3.OperationalError: attempt to write a readonly database"


@pytest.mark.parametrize("logs", [EROFS, SQLITE, f"INFO starting\n{EROFS}\n"])
def test_a_write_refused_by_the_read_only_root_names_both_fixes(logs: str) -> None:
    hint = read_only_hint(logs, read_only=True)
    assert hint is not None
    assert "mount a volume where it writes (app/volumes" in hint and "set app/read_only: false" in hint


def test_no_hint_for_other_failures_or_a_writable_root() -> None:
    assert read_only_hint("ModuleNotFoundError: No module named 'app'", read_only=True) is None
    assert read_only_hint(EROFS, read_only=False) is None  # the root is writable: the error is something else


def test_every_line_of_the_tail_is_quoted() -> None:
    """A crash loop's error is in the oldest lines of the tail (the killed run's start follows it): an error quoted
    only the last 30 of the 80 lines it read, and could miss it."""
    tail = ["Failed to find attribute 'missing' in 'app.main'."] + [f"[INFO] start line {i}" for i in range(79)]
    quoted = quote_log("\n".join(tail)).splitlines()
    assert len(quoted) == 80 and quoted[0] == "    Failed to find attribute 'missing' in 'app.main'."
    assert quote_log("") == "    (no output)"
