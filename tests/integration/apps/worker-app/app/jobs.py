"""The job the worker runs: records that job_id ran, how often, and on which release."""

from __future__ import annotations

import time

from .conn import redis
from .version import VERSION


def record(job_id: str) -> str:
    time.sleep(0.2)  # long enough that a SIGTERM often lands while a job runs
    r = redis()
    pipe = r.pipeline()
    pipe.sadd("done", job_id)
    pipe.hincrby("runs", job_id, 1)
    pipe.hincrby("by_version", VERSION, 1)
    pipe.execute()
    print(f"recorded job {job_id} on {VERSION}", flush=True)
    return VERSION
