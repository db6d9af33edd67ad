"""A test app for mode: swarm (tests/integration/test_swarm.py).

Every answer names the container that gave it (``host``: Swarm sets a task's hostname to its container id), so a
test can tell which node served it. Tests change VERSION (a one-line code change) and drop BROKEN_HEALTH beside
this module to build a release whose health path always answers 500.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

VERSION = "v1"
HERE = Path(__file__).parent

app = FastAPI()


@app.get("/health", response_model=None)
def health() -> dict[str, str] | JSONResponse:
    if (HERE / "BROKEN_HEALTH").exists():
        return JSONResponse({"status": "broken on purpose"}, status_code=500)
    return {"status": "ok", "version": VERSION}


@app.get("/")
def index() -> dict[str, object]:
    return {"version": VERSION, "host": socket.gethostname(), "pid": os.getpid()}
