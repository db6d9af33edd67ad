"""The app of the schedules test: its health route, and the ticks the scheduled job wrote."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from .version import VERSION

TICKS = Path("/var/lib/ticks/ticks.txt")

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": VERSION}


@app.get("/ticks")
def ticks() -> list[str]:
    return TICKS.read_text().splitlines() if TICKS.exists() else []
