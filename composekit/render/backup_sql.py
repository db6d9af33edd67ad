"""The SQL and the bash of backups on PostgreSQL, pure: pg_dump in the exported REPEATABLE READ snapshot in which every
table's rows are counted (and the Alembic revision read), and the same counts in the throwaway database of the
verification. engine/backup.py runs them in containers of the database image (`composekit backup`); the backup-db
service of a scheduled backup (render/backup.py) runs the same scripts inside agent_script. Their output is parsed
and compared by engine/backup_manifest.py (parse_counts, compare_counts), on both paths."""

from __future__ import annotations

import shlex

from ..render.names import FILES_DIR
from ..render.secrets import DB_SECRET

__all__ = [
    "AGENT_DIR",
    "BACKUP_DIR",
    "VERIFY_COUNT_FAILED",
    "VERIFY_RESTORE_FAILED",
    "VERIFY_START_FAILED",
    "agent_script",
    "count_script",
    "dump_script",
]

# Where the backups volume is mounted in every container of a backup.
BACKUP_DIR = "/backups"
_DIR = BACKUP_DIR
# The backup-db agent's queue in the backups volume (a dot: `backups` lists no such directory).
AGENT_DIR = ".agent"

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


def _dump_lines() -> list[str]:
    """In the backup's directory: pg_dump in the snapshot the row counts are read in (rows.tsv, alembic.txt beside)."""
    return [
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


def dump_script(backup_id: str) -> str:
    """bash for a container of the database image: pg_dump in the snapshot the row counts are read in."""
    return "\n".join(["set -eu", "umask 077", f"cd {_DIR}/{shlex.quote(backup_id)}", *_dump_lines()])


def _count_lines(host: str) -> list[str]:
    return [
        f"psql -X -q -v ON_ERROR_STOP=1 -h {host} <<'SQL'",
        "\\pset format unaligned",
        "\\pset tuples_only on",
        _COUNT_SQL,
        "SELECT 'alembic=';",
        _ALEMBIC_SQL,
        "SQL",
    ]


def count_script() -> str:
    """bash in the throwaway database: the row counts, then a line ``alembic=<state>``."""
    return "\n".join(["set -eu", *_count_lines("127.0.0.1")])


# The exit codes of the agent's verify (runtime/backup_job.py words them).
VERIFY_START_FAILED, VERIFY_RESTORE_FAILED, VERIFY_COUNT_FAILED = 3, 4, 5


def agent_script() -> str:
    """bash for the backup-db service of a scheduled backup (render/backup.py), in the database image: it serves the
    backup job's requests (runtime/backup_job.py), written as files into the backups volume's .agent directory, one
    at a time: ``dump ID`` (dump_script's work, into the backup's directory) and ``verify ID`` (pg_restore into a
    temporary cluster, initdb + pg_ctl as the postgres user, listening on a Unix socket only, then count_script's
    counts on stdout). Each request's stdout, stderr and exit code are written beside it."""
    return "\n".join(
        [
            "# composekit's backup-db agent (render/backup_sql.py agent_script): serves runtime/backup_job.py.",
            "set -u",
            f"BACKUPS={_DIR}",
            f"QUEUE={_DIR}/{AGENT_DIR}",
            # Debian's packages keep initdb and pg_ctl out of PATH (the official image puts them in).
            'for bin in /usr/lib/postgresql/*/bin; do [ -d "$bin" ] && PATH="$PATH:$bin"; done',
            "export PATH",
            'mkdir -p "$QUEUE" && chmod 700 "$QUEUE"',
            'as_postgres() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }',
            "dump() (",
            "set -eu",
            "umask 077",
            'cd "$BACKUPS/$1"',
            *_dump_lines(),
            ")",
            "verify() (",
            "set -u",
            'dir="$BACKUPS/.verify-db-$1"',
            'rm -rf "$dir" && mkdir -p "$dir/data" "$dir/run" && chown -R postgres:postgres "$dir" && chmod 700 "$dir"',
            'trap \'as_postgres pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$dir"\' EXIT',
            'as_postgres initdb -D "$dir/data" -U "$PGUSER" --auth=trust -E UTF8 >/dev/null 2>"$dir/initdb.log" '
            f'|| {{ tail -n 5 "$dir/initdb.log" >&2; exit {VERIFY_START_FAILED}; }}',
            'as_postgres pg_ctl -D "$dir/data" -o "-c listen_addresses=\'\' -k $dir/run" -l "$dir/server.log" '
            f'-w -t 120 start >/dev/null || {{ tail -n 5 "$dir/server.log" >&2; exit {VERIFY_START_FAILED}; }}',
            'if [ "$PGDATABASE" != postgres ]; then createdb -h "$dir/run" -U "$PGUSER" "$PGDATABASE" '
            f"|| exit {VERIFY_START_FAILED}; fi",
            'pg_restore --exit-on-error --no-owner --no-acl -h "$dir/run" -U "$PGUSER" -d "$PGDATABASE" '
            f'"$BACKUPS/$1/database.dump" || exit {VERIFY_RESTORE_FAILED}',
            "{",
            *_count_lines('"$dir/run"'),
            f"}} || exit {VERIFY_COUNT_FAILED}",
            ")",
            "trap 'exit 0' TERM INT",
            'echo "backup-db: serving backup requests in $QUEUE"',
            "while :; do",
            '  for request in "$QUEUE"/*.request; do',
            '    [ -f "$request" ] || continue',
            '    base="${request%.request}"',
            '    read -r verb id < "$request" || true',
            '    mv "$request" "$base.taken"',
            '    case "$verb:$id" in',
            '      dump:[0-9]*|verify:[0-9]*) case "$id" in *[!0-9A-Za-z-]*) verb=bad ;; esac ;;',
            "      *) verb=bad ;;",
            "    esac",
            '    if [ "$verb" = bad ]; then',
            '      echo "not a request: $(head -c 200 "$base.taken")" >"$base.err"; : >"$base.out"; rc=2',
            "    else",
            '      echo "backup-db: $verb $id"',
            '      "$verb" "$id" >"$base.out" 2>"$base.err"; rc=$?',
            "    fi",
            '    echo "backup-db: $verb $id exited $rc"',
            '    [ "$rc" = 0 ] || tail -n 20 "$base.err" | sed "s/^/backup-db:   /"',
            '    echo "$rc" >"$base.rc.tmp" && mv "$base.rc.tmp" "$base.rc" && rm -f "$base.taken"',
            "  done",
            "  sleep 1 & wait $!",
            "done",
            "",
        ]
    )
