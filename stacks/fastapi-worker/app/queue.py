"""The job queue: RQ on the stack's Redis accessory. The password comes from the process environment
(app/secrets: REDIS_PASSWORD), never from a file of the image."""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue


def redis() -> Redis:
    return Redis(host=os.environ["REDIS_HOST"], port=6379, password=os.environ["REDIS_PASSWORD"], socket_timeout=5)


def queue() -> Queue:
    return Queue("default", connection=redis())
