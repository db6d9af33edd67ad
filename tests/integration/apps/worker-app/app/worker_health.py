"""The worker's health_command: Redis answers with the worker's credentials."""

from __future__ import annotations

import sys

from .conn import redis

sys.exit(0 if redis().ping() else 1)
