"""The pre-start step: bring the PostgreSQL schema up to date. Safe to run on every deploy."""

from __future__ import annotations

from .db import connect

MIGRATIONS = [
    "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
]
LOCK_ID = 7_417_001  # one migration at a time, even if two deploys race


def main() -> None:
    with connect() as db:
        db.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, statement in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            with db.transaction():
                db.execute(statement)
                db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            print(f"migrate: applied version {version}", flush=True)
        server = db.execute("SHOW server_version").fetchone()
        db.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    print(f"migrate: PostgreSQL {server[0] if server else '?'} is at version {len(MIGRATIONS)}", flush=True)


if __name__ == "__main__":
    main()
