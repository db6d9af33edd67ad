"""A stand-in migration: it only prints; the test compares its container's end with the worker's start."""

from .version import VERSION

print(f"migrated for {VERSION}", flush=True)
