"""The migration: connects with the variables it was given and records their hashes in the data volume."""

from __future__ import annotations

import json
from pathlib import Path

from .secret_hashes import database_user, hashes


def main() -> None:
    seen = {"hashes": hashes(), "database": database_user()}
    Path("/data/migrate.json").write_text(json.dumps(seen))
    print(f"migrate: connected as {seen['database']}, saw {sorted(seen['hashes'])}", flush=True)


if __name__ == "__main__":
    main()
