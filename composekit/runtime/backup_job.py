"""A scheduled backup (backups/schedule): run by runtime/scheduler.py in the stack's `backup` service (the app's image,
root with the manual helper's capabilities, no network), never from the deploying machine. The same steps, files and
manifest as `composekit backup` (engine/backup.py), so `backups`, `restore`, `status` and smoke treat both alike:

1. the database's side is asked of the `backup-db` service (render/backup_sql.py agent_script, the database image):
   pg_dump in one snapshot with the row counts, into the backup's directory;
2. the app's volumes are archived here (runtime/backup_worker.py: SQLite through its backup API);
3. the manifest is written (engine/backup_manifest.py build_manifest, kind ``scheduled``), then verified: every
   file's checksum, archives extracted, SQLite's integrity (backup_worker.py verify), and the dump restored by
   backup-db into a temporary cluster whose row counts and Alembic state are compared (restored_problems);
4. only after a verified backup, retention (backup_manifest.py retention) deletes older ones.

Exit 0 only when the backup is verified; else 1, and the last line says why (`composekit logs backup`). A backup
whose files could not be written is removed (no manifest: it never counts); a failed verification stays, marked
failed. backup_worker.py and backup_manifest.py are delivered beside this file (the files volume) and loaded from
there. Usage: python backup_job.py SETTINGS_JSON (render/backup.py)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

BACKUPS = "/backups"
QUEUE = os.path.join(BACKUPS, ".agent")
ROUTES = "/routes"
TAKE_WITHIN = 60.0  # seconds backup-db may take to pick a request up
POLL = 0.5
# The exit codes of agent_script's verify (render/backup_sql.py).
START_FAILED, RESTORE_FAILED, COUNT_FAILED = 3, 4, 5


class BackupFailed(Exception):
    """Why a scheduled backup failed; printed as the job's last line."""


def _load(name: str) -> Any:
    """A module delivered beside this file (sys.path[0] is this file's directory)."""
    return importlib.import_module(name)


def ask_agent(verb: str, backup_id: str, deadline: float) -> tuple[int, str, str]:
    """Ask backup-db for ``verb backup_id``: (exit code, stdout, stderr). Raises BackupFailed when nobody takes the
    request within TAKE_WITHIN seconds or it does not finish before ``deadline`` (time.monotonic())."""
    os.makedirs(QUEUE, mode=0o700, exist_ok=True)
    base = os.path.join(QUEUE, f"{backup_id}-{verb}-{uuid.uuid4().hex[:8]}")
    with open(base + ".tmp", "w") as f:
        f.write(f"{verb} {backup_id}\n")
    os.replace(base + ".tmp", base + ".request")
    asked = time.monotonic()
    try:
        while not os.path.exists(base + ".rc"):
            now = time.monotonic()
            if os.path.exists(base + ".request") and now - asked > TAKE_WITHIN:
                raise BackupFailed(
                    f"the backup-db service did not take the {verb} request within {TAKE_WITHIN:g} s: is it running? "
                    "(`composekit status`, `composekit logs backup-db`; `composekit up` starts it)"
                )
            if now > deadline:
                raise BackupFailed(f"backup-db's {verb} did not finish within backups/timeout")
            time.sleep(POLL)
        outputs = []
        for suffix in (".rc", ".out", ".err"):
            with open(base + suffix, errors="replace") as f:
                outputs.append(f.read())
        return int(outputs[0].strip() or 1), outputs[1], outputs[2]
    finally:
        for suffix in (".request", ".rc", ".out", ".err"):
            if os.path.exists(base + suffix):
                os.remove(base + suffix)


def _tail(text: str, lines: int = 3) -> str:
    return " ".join(text.strip().splitlines()[-lines:]) or "no message"


def _read_json(path: str, default: Any) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def _write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    partial = os.path.join(directory, ".manifest.json.partial")
    with open(partial, "w") as f:
        f.write(json.dumps(manifest, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, os.path.join(directory, "manifest.json"))


def verify_database(manifest: dict[str, Any], settings: dict[str, Any], deadline: float) -> tuple[list[str], list[str]]:
    """backup-db restores the dump into a temporary cluster and counts its rows; compared as engine/backup.py does."""
    rules = _load("backup_manifest")
    code, out, err = ask_agent("verify", manifest["id"], deadline)
    file = manifest["database"]["file"]
    if code == START_FAILED:
        return [f"database: the temporary PostgreSQL did not start: {_tail(err)}"], []
    if code == RESTORE_FAILED:
        return [f"database: pg_restore of {file} failed: {_tail(err)}"], []
    checks = ["pg_restore into a temporary PostgreSQL"]
    if code != 0:
        return [f"database: counting the restored rows failed: {_tail(err)}"], checks
    rows, alembic = rules.parse_counts(out)
    problems, more = rules.restored_problems(manifest, rows, alembic, alembic_state=settings["alembic_state"])
    return problems, checks + more


def _write_files(backup_id: str, directory: str, settings: dict[str, Any], deadline: float) -> tuple[Any, Any]:
    worker = _load("backup_worker")
    database = None
    if settings["database"] is not None:
        print(f"dumping the database {settings['database']['name']} (pg_dump in backup-db, one snapshot)", flush=True)
        code, _out, err = ask_agent("dump", backup_id, deadline)
        if code != 0:
            raise BackupFailed(f"pg_dump of the database failed: {_tail(err)}")
        meta = worker.read_db(directory)
        size, sha = worker.file_digest(os.path.join(directory, "database.dump"))
        database = {
            "engine": "postgres",
            "file": "database.dump",
            "image": settings["database"]["image"],
            "name": settings["database"]["name"],
            "size": size,
            "sha256": sha,
            "rows": meta["rows"],
            "alembic": meta["alembic"],
        }
    volumes: dict[str, Any] = {}
    if settings["volumes"]:
        print(f"archiving the volumes {', '.join(sorted(settings['volumes']))}", flush=True)
        volumes = worker.archive(directory, settings["volumes"])
    return database, volumes


def run(settings: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """One scheduled backup; returns its manifest (verified or failed). Raises BackupFailed before a manifest."""
    worker, rules = _load("backup_worker"), _load("backup_manifest")
    started = now or datetime.now(UTC)
    deadline = time.monotonic() + settings["timeout"]
    existing = [m.get("id") for m in worker.list_backups(BACKUPS)]
    backup_id = rules.new_backup_id(started, [i for i in existing if i] + os.listdir(BACKUPS))
    directory = os.path.join(BACKUPS, backup_id)
    os.makedirs(directory, mode=0o700)
    print(f"backup {backup_id}: into the backups volume", flush=True)
    try:
        database, volumes = _write_files(backup_id, directory, settings, deadline)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        print(f"removed the partial backup {backup_id}", flush=True)
        raise
    releases = _read_json(os.path.join(ROUTES, "releases.json"), [])
    manifest = rules.build_manifest(
        backup_id=backup_id,
        project=settings["project"],
        version=settings["version"],
        started=started,
        finished=datetime.now(UTC),
        release=releases[-1]["id"] if releases else None,
        migration=_read_json(os.path.join(ROUTES, "migration.json"), None),
        database=database,
        volumes=volumes,
        kind="scheduled",
    )
    _write_manifest(directory, manifest)
    print(f"verifying backup {backup_id}: checksums, archives extracted, SQLite integrity", flush=True)
    scratch = os.path.join(BACKUPS, f".verify-{backup_id}")
    os.makedirs(scratch, exist_ok=True)
    try:
        problems: list[str] = worker.verify(directory, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    checks = ["checksums of every file"]
    if volumes:
        checks.append("volume archives extracted, every file's checksum, SQLite integrity_check")
    if database is not None and not any(p.startswith("database:") for p in problems):
        print("verifying the dump: pg_restore into a temporary PostgreSQL (backup-db), row counts compared", flush=True)
        more_problems, more_checks = verify_database(manifest, settings, deadline)
        problems += more_problems
        checks += more_checks
    manifest = dict(rules.set_verification(manifest, problems, checks, datetime.now(UTC)))
    _write_manifest(directory, manifest)
    if manifest["status"] == "verified" and settings["keep"] is not None:
        listed = [rules.parse_manifest(m) for m in worker.list_backups(BACKUPS)]
        old = rules.retention(listed, settings["keep"], made=backup_id)
        if old:
            removed = worker.remove_backups(BACKUPS, old)
            keep = rules.keep_text(settings["keep"])
            print(f"deleted {len(removed)} older backups (backups/keep is {keep}): {', '.join(removed)}", flush=True)
    return manifest


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    try:
        manifest = run(settings)
    except BackupFailed as exc:
        print(f"scheduled backup failed: {exc}", flush=True)
        return 1
    if manifest["status"] != "verified":
        problems = "; ".join(manifest["verification"]["problems"])
        print(
            f"scheduled backup {manifest['id']} failed its verification: {problems}. It is kept for inspection, marked "
            "failed, and never counts as the latest backup",
            flush=True,
        )
        return 1
    print(f"backup {manifest['id']} verified", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
