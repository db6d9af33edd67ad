"""A test app for `composekit smoke`: its health path answers 500 once the flag file exists.

The container must deploy healthy (`composekit up` waits for it), so the failure is switched on
afterwards with `docker exec CONTAINER touch $SMOKE_FAIL_FLAG`.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

FAIL_FLAG = Path(os.environ.get("SMOKE_FAIL_FLAG", "/tmp/smoke-fail-health"))

app = FastAPI()


@app.get("/health", response_model=None)
def health() -> dict[str, str] | JSONResponse:
    if FAIL_FLAG.exists():
        return JSONResponse({"status": "failing", "flag": str(FAIL_FLAG)}, status_code=500)
    return {"status": "ok"}


@app.get("/api/version")
def version() -> dict[str, object]:
    return {"app": {"name": "smoke-app", "version": "1.0"}}
