"""Connecting to the stack's PostgreSQL from the environment composekit sets.

DATABASE_HOST, DATABASE_PORT, DATABASE_NAME and DATABASE_USER are plain settings; the password is
read from the Docker secret file named by DATABASE_PASSWORD_FILE, so it never sits in the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg


def connect() -> psycopg.Connection[tuple[object, ...]]:
    password = Path(os.environ["DATABASE_PASSWORD_FILE"]).read_text().strip()
    return psycopg.connect(
        host=os.environ["DATABASE_HOST"],
        port=int(os.environ.get("DATABASE_PORT", "5432")),
        dbname=os.environ["DATABASE_NAME"],
        user=os.environ["DATABASE_USER"],
        password=password,
        connect_timeout=10,
    )
