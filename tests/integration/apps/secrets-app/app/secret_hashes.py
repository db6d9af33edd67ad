"""SHA-256 hashes of the secret variables this process sees: what the test compares, never the values."""

from __future__ import annotations

import hashlib
import os

import psycopg

NAMES = ("SECRET_KEY", "DATABASE_URL", "POSTGRES_PASSWORD")


def hashes() -> dict[str, str]:
    return {name: hashlib.sha256(os.environ[name].encode()).hexdigest() for name in NAMES if name in os.environ}


def connect() -> psycopg.Connection[tuple[object, ...]]:
    """From DATABASE_URL (a SQLAlchemy-style "postgresql+psycopg" scheme is plain libpq's postgresql) or from the
    POSTGRES_* set, as the app would: nothing else."""
    url = os.environ.get("DATABASE_URL")
    if url is not None:
        return psycopg.connect("postgresql://" + url.split("://", 1)[1], connect_timeout=10)
    return psycopg.connect(
        host=os.environ["POSTGRES_SERVER"],
        port=int(os.environ["POSTGRES_PORT"]),
        dbname=os.environ["POSTGRES_DB"],
        user=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        connect_timeout=10,
    )


def database_user() -> str:
    with connect() as db:
        row = db.execute("SELECT current_user || '@' || current_database()").fetchone()
    return str(row[0]) if row else "?"
