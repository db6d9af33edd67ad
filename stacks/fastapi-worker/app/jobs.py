"""What the worker runs: jobs the app enqueues."""

from __future__ import annotations

from .db import connect


def shout(note_id: int) -> None:
    """Upper-case a note, in the background."""
    with connect() as db:
        db.execute("UPDATE notes SET text = upper(text) WHERE id = %s", (note_id,))
    print(f"shouted note {note_id}", flush=True)
