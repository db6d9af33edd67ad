"""A failed container's last log lines, for the user: quoted in an error, and the fixes read from them that the
engine's own error cannot say. Pure."""

from __future__ import annotations

__all__ = ["quote_log", "read_only_hint"]

# What Python prints when a write meets the read-only root filesystem (app/read_only): OSError's EROFS text, and
# SQLite's own message for a database file it cannot write.
_READ_ONLY_MARKS = ("Read-only file system", "attempt to write a readonly database")


def read_only_hint(logs: str, read_only: bool) -> str | None:
    """The fix when ``logs`` show a write refused by the read-only root filesystem (only when it is read-only)."""
    if not read_only or not any(mark in logs for mark in _READ_ONLY_MARKS):
        return None
    return (
        "its log shows a write refused by the image's read-only filesystem (app/read_only: true; only /tmp and the "
        "app's volumes are writable): mount a volume where it writes (app/volumes, e.g. {data: /app/data}) or set "
        "app/read_only: false"
    )


def quote_log(text: str) -> str:
    """``text`` (a log tail: the caller bounds it, e.g. LOG_LINES) indented under an error's "Last log lines of"; every
    line of it: the lines that hold the error are often the oldest ones of the tail (a crash loop's run that the kill
    interrupted prints its start after them)."""
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"
