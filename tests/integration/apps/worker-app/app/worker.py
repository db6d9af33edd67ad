"""The worker process: RQ's worker on the default queue. On SIGTERM RQ finishes the job it runs (warm shutdown)."""

from __future__ import annotations

from rq import Queue, Worker

from .conn import redis
from .version import VERSION

if __name__ == "__main__":
    print(f"worker of {VERSION} starting", flush=True)
    conn = redis()
    Worker([Queue("default", connection=conn)], connection=conn).work()
