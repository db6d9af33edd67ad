"""The worker's health_command: it reaches Redis with its credentials."""

from __future__ import annotations

import sys

from .queue import redis

sys.exit(0 if redis().ping() else 1)
