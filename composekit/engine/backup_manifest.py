"""A backup's manifest and the decisions taken from manifests, pure: backup ids, building and reading a manifest,
which backup is the latest verified one, how old it may be (status, smoke), whether a restore may go on.

A manifest (manifest.json in the backup's directory of the backups volume) records what was backed up and never a
secret: the release serving, the migration state composekit recorded (migration.json), per file its size and sha256,
the database's row counts at dump time, the times, composekit's version, and the verification's outcome. Only a
backup whose manifest says ``verified`` counts (as the latest, for its age, for a restore).

The standard library only: a scheduled backup ships this file into the stack (render/backup.py) and its job
(runtime/backup_job.py) takes the same decisions with it (ids, manifest, counts compared, retention)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BACKUPS_VOLUME",
    "FORMAT",
    "AgeCheck",
    "BackupInfo",
    "RestoreGuard",
    "age_check",
    "age_text",
    "build_manifest",
    "compare_counts",
    "find_backup",
    "keep_text",
    "latest_verified",
    "new_backup_id",
    "parse_backup_id",
    "parse_counts",
    "parse_manifest",
    "restore_guard",
    "restored_problems",
    "retention",
    "set_verification",
]

FORMAT = 1
# The volume (key, as Compose names volumes: <project>_backups) that holds one directory per backup.
BACKUPS_VOLUME = "backups"
_ID_RE = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")
_STAMP = "%Y%m%dT%H%M%SZ"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_backup_id(text: str) -> datetime | None:
    """The UTC time of a backup id (``20261203T110000Z``, or ``...Z-2`` for a second one in that second); None
    when ``text`` is no backup id."""
    match = _ID_RE.match(text)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def new_backup_id(now: datetime, existing: list[str]) -> str:
    """A backup id from ``now`` (UTC, to the second), distinct from ``existing``."""
    base = now.astimezone(UTC).strftime(_STAMP)
    taken = set(existing)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def build_manifest(
    *,
    backup_id: str,
    project: str,
    version: str,
    started: datetime,
    finished: datetime,
    release: str | None,
    migration: dict[str, Any] | None,
    database: dict[str, Any] | None,
    volumes: dict[str, dict[str, Any]],
    kind: str = "manual",
) -> dict[str, Any]:
    """The manifest of a backup whose files are written, before its verification (status ``pending``).

    ``migration``: migration.json as composekit recorded it (release, state, at) or None; ``database``: the dump's
    file, size, sha256, image, row counts and Alembic state; ``volumes``: per volume its archive and its files."""
    return {
        "format": FORMAT,
        "id": backup_id,
        "project": project,
        "kind": kind,
        "composekit": version,
        "started": _iso(started),
        "finished": _iso(finished),
        "release": release,
        "migration": migration,
        "database": database,
        "volumes": volumes,
        "status": "pending",
        "verification": None,
    }


def set_verification(manifest: dict[str, Any], problems: list[str], checks: list[str], at: datetime) -> dict[str, Any]:
    """The manifest with its verification's outcome: ``verified`` without problems, else ``failed``."""
    out = dict(manifest)
    out["status"] = "failed" if problems else "verified"
    out["verification"] = {"at": _iso(at), "checks": checks, "problems": problems}
    return out


@dataclass(frozen=True)
class BackupInfo:
    """One backup, as `composekit backups` lists it."""

    id: str
    status: str  # verified | failed | pending (never finished) | unreadable
    finished: str | None
    size: int
    release: str | None
    migration: str | None  # the migration state recorded at backup time
    kind: str = "manual"
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.status == "verified"


def parse_manifest(data: dict[str, Any]) -> BackupInfo:
    """A manifest (or `list`'s shortened one) as a BackupInfo; anything unreadable gives status ``unreadable``."""
    try:
        database = data.get("database") or {}
        size = int(database.get("size", 0)) + sum(int(v.get("size", 0)) for v in (data.get("volumes") or {}).values())
        migration = data.get("migration") or {}
        verification = data.get("verification") or {}
        return BackupInfo(
            id=str(data["id"]),
            status=str(data.get("status", "unreadable")),
            finished=data.get("finished"),
            size=size,
            release=data.get("release"),
            migration=migration.get("state"),
            kind=str(data.get("kind", "manual")),
            problems=list(verification.get("problems", [])),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return BackupInfo(
            id=str(data.get("id", "?")), status="unreadable", finished=None, size=0, release=None, migration=None
        )


def latest_verified(backups: list[BackupInfo]) -> BackupInfo | None:
    """The newest verified backup (by id: ids sort by time); a failed or unfinished one never counts."""
    verified = [b for b in backups if b.verified and parse_backup_id(b.id) is not None]
    return max(verified, key=lambda b: (parse_backup_id(b.id), b.id), default=None)


def find_backup(backups: list[BackupInfo], wanted: str) -> BackupInfo:
    """The backup ``wanted`` names: an id, or ``latest`` (the newest verified one). ValueError says what exists."""
    if wanted == "latest":
        found = latest_verified(backups)
        if found is None:
            raise ValueError("there is no verified backup (`composekit backup` makes one)")
        return found
    for b in backups:
        if b.id == wanted:
            return b
    known = ", ".join(b.id for b in backups) or "none"
    hint = "" if parse_backup_id(wanted) else " (a backup id looks like 20261203T110000Z)"
    raise ValueError(f"there is no backup {wanted!r}{hint}; the backups on the server: {known}")


def _day(when: datetime) -> tuple[int, int, int]:
    return (when.year, when.month, when.day)


def _week(when: datetime) -> tuple[int, int]:
    year, week, _ = when.isocalendar()
    return (year, week)


def _newest_per(verified: list[BackupInfo], period: Callable[[datetime], Any], count: int) -> set[str]:
    """The newest backup of each of the ``count`` newest periods (UTC days, ISO weeks) that hold one."""
    newest: dict[Any, BackupInfo] = {}
    for b in verified:  # oldest first: the last one of a period wins
        taken = parse_backup_id(b.id)
        assert taken is not None
        newest[period(taken)] = b
    return {newest[key].id for key in sorted(newest)[-count:]}


def keep_text(keep: int | Mapping[str, int]) -> str:
    """backups/keep as the config says it: "2", "{daily: 7, weekly: 4}"."""
    if isinstance(keep, int):
        return str(keep)
    return "{" + ", ".join(f"{k}: {v}" for k, v in keep.items()) + "}"


def retention(
    backups: list[BackupInfo], keep: int | Mapping[str, int], made: str | None = None, protect: Collection[str] = ()
) -> list[str]:
    """The backups to delete once the backup ``made`` was verified, oldest first; ``protect`` are never deleted
    (a restore's own backup, while the restore's safety backup is made).

    ``keep`` a number N: the N newest verified backups are kept. ``keep`` {"daily": D, "weekly": W}: the newest
    verified backup of each of the D newest UTC days that have one, and of each of the W newest ISO weeks (Monday to
    Sunday, UTC) that have one. Either way the newest verified backup and ``made`` are always kept. A verified
    backup not kept is deleted; a failed or unfinished one once it is older than the oldest kept backup (until then
    it stays for inspection). A backup whose id is no backup id is never deleted."""
    by_time = sorted(
        (b for b in backups if parse_backup_id(b.id) is not None), key=lambda b: (parse_backup_id(b.id), b.id)
    )
    verified = [b for b in by_time if b.verified]
    if not verified:
        return []
    if isinstance(keep, int):
        kept = {b.id for b in verified[-keep:]}
    else:
        kept = _newest_per(verified, _day, keep.get("daily", 0)) if keep.get("daily") else set()
        kept |= _newest_per(verified, _week, keep["weekly"]) if keep.get("weekly") else set()
    kept |= {verified[-1].id} | ({made} if made is not None else set()) | {b.id for b in by_time if b.id in protect}
    oldest_kept = min(i for i, b in enumerate(by_time) if b.id in kept)
    return [b.id for i, b in enumerate(by_time) if b.id not in kept and (b.verified or i < oldest_kept)]


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


def restored_problems(
    manifest: dict[str, Any], rows: dict[str, int], alembic: str | None, *, alembic_state: bool
) -> tuple[list[str], list[str]]:
    """What the dump restored into a throwaway PostgreSQL shows against the manifest: every table's row count equal
    to the one read at dump time, the Alembic revision equal to the dump-time one, and, when the migration state is
    `alembic current`'s (``alembic_state``), equal to the migration state the manifest records. (problems, checks)"""
    database = manifest["database"]
    problems = compare_counts(database.get("rows", {}), rows)
    checks = [f"row counts of {len(rows)} tables equal those at dump time"]
    if alembic != database.get("alembic"):
        problems.append(
            f"database: the restored Alembic state is {alembic or 'none'}, {database.get('alembic') or 'none'} "
            "at dump time"
        )
    recorded = (manifest.get("migration") or {}).get("state")
    if alembic_state and recorded is not None:
        checks.append("migration state equals the manifest's")
        if alembic != recorded:
            problems.append(
                f"database: the restored migration state is {alembic or 'none'}, the manifest records {recorded} "
                "(composekit's record of the last migration, migration.json)"
            )
    return problems, checks


@dataclass(frozen=True)
class AgeCheck:
    status: str  # ok | warn | fail
    detail: str


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def age_text(backup: BackupInfo, now: datetime) -> str:
    """How old ``backup`` is, from its id: "3.5 h old", "4.0 days old"."""
    taken = parse_backup_id(backup.id)
    return "of unknown age" if taken is None else f"{_hours(max((now - taken).total_seconds(), 0))} old"


def age_check(latest: BackupInfo | None, now: datetime, warn_hours: float, fail_hours: float) -> AgeCheck:
    """How old the last verified backup is: warn past ``warn_hours``, fail past ``fail_hours`` or when there is
    none."""
    if latest is None:
        return AgeCheck("fail", "no verified backup on the server")
    taken = parse_backup_id(latest.id)
    assert taken is not None  # latest_verified only returns backups with an id
    age = (now - taken).total_seconds()
    detail = f"the last verified backup, {latest.id}, is {age_text(latest, now)}"
    if age > fail_hours * 3600:
        return AgeCheck("fail", f"{detail} (fails past {fail_hours:g} h)")
    if age > warn_hours * 3600:
        return AgeCheck("warn", f"{detail} (warns past {warn_hours:g} h)")
    return AgeCheck("ok", detail)


@dataclass(frozen=True)
class RestoreGuard:
    proceed: bool
    message: str | None = None


def restore_guard(
    backup: BackupInfo, serving_state: str | None, releases: list[tuple[str, str | None]], *, yes: bool
) -> RestoreGuard:
    """Whether restoring ``backup`` may go on, from the migration states: the one recorded with the backup and the
    one the serving release's database is at (``serving_state``, composekit's last migration record). Different:
    refused unless ``yes``, naming both and the release to deploy (``releases``: (id, state), oldest first: the
    newest recorded at the backup's state, else the backup's own release). Unknown on a side: go, with a warning."""
    if not backup.verified:
        return RestoreGuard(
            False,
            f"backup {backup.id} is {backup.status}, not verified"
            + (f" ({'; '.join(backup.problems[:3])})" if backup.problems else "")
            + ": only a verified backup is restored; choose another (`composekit backups`)",
        )
    if backup.migration is None or serving_state is None:
        return RestoreGuard(
            True,
            f"the migration state is unknown (backup {backup.id}: {backup.migration or 'unknown'}, serving: "
            f"{serving_state or 'unknown'}), so composekit cannot tell whether the serving code fits the restored "
            "database; restoring anyway",
        )
    if backup.migration == serving_state:
        return RestoreGuard(True)
    matching = [rid for rid, state in releases if state == backup.migration]
    deploy = matching[-1] if matching else backup.release
    which = (
        f"release {deploy} ran at that state: roll back to it (`composekit rollback {deploy} --yes`) or deploy its code"
        if matching
        else f"deploy the code of release {deploy or '(unknown)'}, which the backup was taken from"
    )
    states = (
        f"backup {backup.id} was taken at migration state {backup.migration}, the serving release's database is at "
        f"{serving_state}"
    )
    if not yes:
        return RestoreGuard(
            False,
            f"{states}: the serving code may not run on the restored database. After the restore, {which}. Run "
            f"`composekit restore {backup.id} --yes` to restore anyway (nothing was changed)",
        )
    return RestoreGuard(True, f"{states} (--yes); after the restore, {which}")
