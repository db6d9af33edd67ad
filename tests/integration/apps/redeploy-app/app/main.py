"""A test app for zero-downtime redeploys (tests/integration/test_redeploy.py, benchmarks/redeploy_downtime.py).

Tests change VERSION (the one-line code change) and drop marker files beside this module to make a release
misbehave: BROKEN_HEALTH (its health path always answers 500) or BROKEN_AFTER_HEALTH (its health path answers
200 to Docker's healthcheck, from inside the container, and to composekit's routing probes, which name a routes
generation, and 500 to every other request from outside: healthy until clients reach it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

VERSION = "v1"
HERE = Path(__file__).parent

app = FastAPI()


@app.get("/health", response_model=None)
def health(request: Request) -> dict[str, str] | JSONResponse:
    if (HERE / "BROKEN_HEALTH").exists():
        return JSONResponse({"status": "broken on purpose"}, status_code=500)
    if (
        (HERE / "BROKEN_AFTER_HEALTH").exists()
        and request.client
        and request.client.host != "127.0.0.1"
        and "x-composekit-generation" not in request.headers
    ):
        return JSONResponse({"status": "broken after its health check"}, status_code=500)
    return {"status": "ok", "version": VERSION}


@app.get("/")
def index() -> dict[str, str]:
    return {"version": VERSION}


@app.get("/slow")
async def slow(seconds: float = 5.0) -> StreamingResponse:
    """A long-lived response: one line per second (the graceful-stop window must let it finish)."""

    async def lines() -> object:
        for i in range(int(min(seconds, 60))):
            yield f"{VERSION} {i}\n"
            await asyncio.sleep(1)

    return StreamingResponse(lines(), media_type="text/plain")  # type: ignore[arg-type]
