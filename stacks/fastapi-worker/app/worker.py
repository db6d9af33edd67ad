"""The worker process (`processes: worker` in composekit.yaml): RQ's worker on the default queue. On SIGTERM it
finishes the job it holds (RQ's warm shutdown) within processes/worker/stop_grace."""

from __future__ import annotations

from rq import Worker

from .queue import queue

if __name__ == "__main__":
    q = queue()
    Worker([q], connection=q.connection).work()
