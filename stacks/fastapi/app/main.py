"""A small FastAPI app that refuses to start on an unmigrated database."""

from __future__ import annotations

import datetime
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pydantic import BaseModel

DATABASE = os.environ.get("DATABASE_PATH", "/data/app.db")


def connect() -> sqlite3.Connection:
    return sqlite3.connect(DATABASE, timeout=10)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    with connect() as db:
        try:
            row = db.execute("SELECT max(version), max(applied_at) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError as exc:
            raise RuntimeError(f"database {DATABASE} is not migrated ({exc}); the migrate service runs first") from exc
    app.state.schema_version, app.state.migrated_at = row
    app.state.started_at = datetime.datetime.now(datetime.UTC).isoformat()
    yield


app = FastAPI(lifespan=lifespan)


class Note(BaseModel):
    text: str


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/")
def index(request: Request) -> dict[str, object]:
    return {
        "app": "shop",
        "schema_version": request.app.state.schema_version,
        "migrated_at": request.app.state.migrated_at,
        "started_at": request.app.state.started_at,
        "scheme": request.url.scheme,
        "client": request.client.host if request.client else None,
    }


@app.post("/notes", status_code=201)
def add_note(note: Note) -> dict[str, object]:
    with connect() as db:
        cursor = db.execute("INSERT INTO notes (text) VALUES (?)", (note.text,))
        return {"id": cursor.lastrowid, "text": note.text}


@app.get("/notes")
def list_notes() -> list[dict[str, object]]:
    with connect() as db:
        return [{"id": i, "text": t} for i, t in db.execute("SELECT id, text FROM notes ORDER BY id")]
