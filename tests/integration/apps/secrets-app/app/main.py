"""Reports the hashes of the secret variables the app and its migration saw, and the database user it reached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from .secret_hashes import database_user, hashes

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/secrets")
def secrets() -> dict[str, Any]:
    return {
        "app": hashes(),
        "migrate": json.loads(Path("/data/migrate.json").read_text()),
        "database": database_user(),
    }
