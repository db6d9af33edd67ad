"""Enqueues jobs (POST /enqueue/ID) and reports what the worker did (GET /done)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from rq import Queue

from .conn import redis
from .version import VERSION

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/version")
def version() -> dict[str, str]:
    return {"version": VERSION}


@app.post("/enqueue/{job_id}")
def enqueue(job_id: str) -> dict[str, str]:
    Queue("default", connection=redis()).enqueue("app.jobs.record", job_id, job_id=f"job-{job_id}")
    return {"enqueued": job_id, "by": VERSION}


@app.get("/done")
def done() -> dict[str, Any]:
    r = redis()
    runs = {k.decode(): int(v) for k, v in r.hgetall("runs").items()}
    by_version = {k.decode(): int(v) for k, v in r.hgetall("by_version").items()}
    return {"done": sorted(m.decode() for m in r.smembers("done")), "runs": runs, "by_version": by_version}
