"""The SQL and the bash of backups on PostgreSQL, pure: pg_dump in the exported REPEATABLE READ snapshot in which every
table's rows are counted (and the Alembic revision read), the same counts in the throwaway database of the
verification, and their comparison. engine/backup.py runs them in containers of the database image."""

from __future__ import annotations

import shlex

from ..render.names import FILES_DIR
from ..render.secrets import DB_SECRET

__all__ = ["BACKUP_DIR", "compare_counts", "count_script", "dump_script", "parse_counts"]

# Where the backups volume is mounted in every container of a backup.
BACKUP_DIR = "/backups"
_DIR = BACKUP_DIR

# Every table's row count: a query per table (\gexec), the table named schema.table, a tab, the count.
_COUNT_SQL = (
    "SELECT format('SELECT %L || E''\\t'' || count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, "
    "c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND "
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1 \\gexec"
)
# The Alembic revisions (as engine/migration_state.py reports `alembic current`: sorted, comma-separated).
_ALEMBIC_SQL = (
    "SELECT 'SELECT coalesce(string_agg(version_num, '','' ORDER BY version_num), '''') FROM alembic_version' "
    "WHERE to_regclass('alembic_version') IS NOT NULL \\gexec"
)


def dump_script(backup_id: str) -> str:
    """bash for a container of the database image: pg_dump in the snapshot the row counts are read in."""
    return "\n".join(
        [
            "set -eu",
            "umask 077",
            f"cd {_DIR}/{shlex.quote(backup_id)}",
            f'export PGPASSWORD="$(cat {FILES_DIR}/{DB_SECRET})"',
            "psql -X -q -v ON_ERROR_STOP=1 <<'SQL'",
            "\\pset format unaligned",
            "\\pset tuples_only on",
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;",
            "SELECT pg_export_snapshot() AS composekit_snapshot \\gset",
            "\\setenv COMPOSEKIT_SNAPSHOT :composekit_snapshot",
            '\\! pg_dump --format=custom --snapshot="$COMPOSEKIT_SNAPSHOT" --file=database.dump.partial && '
            "mv database.dump.partial database.dump",
            "\\o rows.tsv",
            _COUNT_SQL,
            "\\o alembic.txt",
            _ALEMBIC_SQL,
            "\\o",
            "COMMIT;",
            "SQL",
            'test -s database.dump || { echo "pg_dump failed: its message is above" >&2; exit 1; }',
        ]
    )


def count_script() -> str:
    """bash in the throwaway database: the row counts, then a line ``alembic=<state>``."""
    return "\n".join(
        [
            "set -eu",
            "psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 <<'SQL'",
            "\\pset format unaligned",
            "\\pset tuples_only on",
            _COUNT_SQL,
            "SELECT 'alembic=';",
            _ALEMBIC_SQL,
            "SQL",
        ]
    )


def parse_counts(text: str) -> tuple[dict[str, int], str | None]:
    """count_script's output: the row counts by table, the Alembic state (None: no alembic_version table)."""
    rows: dict[str, int] = {}
    alembic: str | None = None
    seen_marker = False
    for line in text.splitlines():
        if line == "alembic=":
            seen_marker = True
        elif seen_marker:
            alembic = line.strip() or None
        elif "\t" in line:
            table, _, count = line.rpartition("\t")
            rows[table] = int(count)
    return rows, alembic


def compare_counts(recorded: dict[str, int], restored: dict[str, int]) -> list[str]:
    """The tables whose row count after the restore differs from the one read at dump time."""
    problems = []
    for table in sorted(set(recorded) | set(restored)):
        before, after = recorded.get(table), restored.get(table)
        if before == after:
            continue
        if after is None:
            problems.append(f"database: table {table} ({before} rows at dump time) is missing after the restore")
        elif before is None:
            problems.append(f"database: table {table} is in the restored database but was not counted at dump time")
        else:
            problems.append(f"database: table {table} has {after} rows after the restore, {before} at dump time")
    return problems
