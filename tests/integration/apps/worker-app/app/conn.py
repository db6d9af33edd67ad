"""The Redis connection of the app, the worker and the jobs: the password from the process environment
(app/secrets through composekit's runtime/secret_env.py), never from a file of the image."""

from __future__ import annotations

import os

from redis import Redis


def redis() -> Redis:
    return Redis(host=os.environ["REDIS_HOST"], port=6379, password=os.environ["REDIS_PASSWORD"], socket_timeout=5)
