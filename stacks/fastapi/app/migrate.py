"""The pre-start step: bring the SQLite schema up to date. Safe to run on every deploy."""

from __future__ import annotations

import datetime
import os
import sqlite3

DATABASE = os.environ.get("DATABASE_PATH", "/data/app.db")
MIGRATIONS = [
    "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)",
]


def main() -> None:
    with sqlite3.connect(DATABASE) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, statement in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            db.execute(statement)
            now = datetime.datetime.now(datetime.UTC).isoformat()
            db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, now))
            print(f"migrate: applied version {version}", flush=True)
    print(f"migrate: {DATABASE} is at version {len(MIGRATIONS)}", flush=True)


if __name__ == "__main__":
    main()
