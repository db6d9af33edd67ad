"""A small FastAPI app on PostgreSQL that refuses to start on an unmigrated database, and hands work to a queue
worker through Redis (POST /notes/{id}/shout)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from pydantic import BaseModel

from .db import connect
from .queue import queue


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    with connect() as db:
        try:
            row = db.execute("SELECT max(version), max(applied_at)::text FROM schema_migrations").fetchone()
        except psycopg.errors.UndefinedTable as exc:
            raise RuntimeError(f"the database is not migrated ({exc}); the migrate service runs first") from exc
        server = db.execute("SHOW server_version").fetchone()
    assert row is not None and server is not None
    app.state.schema_version, app.state.migrated_at = row
    app.state.server_version = server[0]
    app.state.started_at = datetime.datetime.now(datetime.UTC).isoformat()
    yield


app = FastAPI(lifespan=lifespan)


class Note(BaseModel):
    text: str


@app.get("/health")
def health() -> dict[str, str]:
    with connect() as db:
        db.execute("SELECT 1")
    return {"status": "ok"}


@app.get("/")
def index(request: Request) -> dict[str, object]:
    return {
        "app": "notes-worker",
        "database": f"PostgreSQL {request.app.state.server_version}",
        "schema_version": request.app.state.schema_version,
        "migrated_at": request.app.state.migrated_at,
        "started_at": request.app.state.started_at,
        "scheme": request.url.scheme,
    }


@app.post("/notes", status_code=201)
def add_note(note: Note) -> dict[str, object]:
    with connect() as db:
        row = db.execute("INSERT INTO notes (text) VALUES (%s) RETURNING id", (note.text,)).fetchone()
    assert row is not None
    return {"id": row[0], "text": note.text}


@app.get("/notes")
def list_notes() -> list[dict[str, object]]:
    with connect() as db:
        return [{"id": i, "text": t} for i, t in db.execute("SELECT id, text FROM notes ORDER BY id")]


@app.post("/notes/{note_id}/shout", status_code=202)
def shout(note_id: int) -> dict[str, object]:
    job = queue().enqueue("app.jobs.shout", note_id)
    return {"queued": job.id}
