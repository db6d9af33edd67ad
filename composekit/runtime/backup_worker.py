"""Runs inside a helper container of the app's image (composekit/engine/backup*.py passes this file as
``python3 -c``): archives the app's named volumes into a backup directory, verifies archives against the
manifest, restores them. The standard library only.

A SQLite file (its first 16 bytes are ``SQLite format 3\\0``) is copied with SQLite's online backup API, never as
a torn file copy; its -wal/-shm/-journal sidecars are left out (the copy is self-contained). Every other file is
archived as it is.

    archive OUT_DIR NAME=PATH...    write OUT_DIR/volumes/NAME.tar.gz per volume; print the results as JSON
    hash FILE                       print {"size": N, "sha256": HEX}
    read_db BACKUP_DIR              print the row counts and Alembic state pg_dump's side wrote, as JSON
    verify BACKUP_DIR SCRATCH       check every file of BACKUP_DIR/manifest.json; print the problems as JSON
    restore BACKUP_DIR NAME=PATH... replace each volume's contents with its archive's
    list BACKUPS_DIR                print every backup's manifest (without the per-file lists) as JSON
    remove BACKUPS_DIR ID...        delete those backups' directories (retention), print their ids
    rename SRC DST                  os.replace (a manifest written beside, put in place whole)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
from typing import Any

SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024


def is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


def file_digest(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def sqlite_copy(source: str, target: str) -> None:
    """A consistent copy of the live database ``source`` (SQLite's backup API, read-only when SQLite allows it).
    A -wal or -shm file SQLite had to create for it is given to the database file's owner."""
    before = {s for s in SIDECARS if os.path.exists(source + s)}
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:  # a WAL database with no -shm yet cannot be opened read-only
        src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        with dst:
            src.backup(dst)
        dst.close()
    finally:
        src.close()
    st = os.stat(source)
    for suffix in SIDECARS:
        if suffix not in before and os.path.exists(source + suffix):
            os.chown(source + suffix, st.st_uid, st.st_gid)


def archive_volume(name: str, root: str, out: str, scratch: str) -> dict[str, Any]:
    """``root`` into the tar.gz ``out``: paths relative to it, owners and modes kept; returns what the manifest
    records (per file: path, size, sha256, sqlite)."""
    files: list[dict[str, Any]] = []
    sqlite_files = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if not os.path.islink(path) and os.path.isfile(path) and is_sqlite(path):
                sqlite_files.add(path)
    skipped = {p + s for p in sqlite_files for s in SIDECARS}
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != ".":
                tar.add(dirpath, arcname=rel_dir, recursive=False)
            for link in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                tar.add(os.path.join(dirpath, link), arcname=os.path.normpath(os.path.join(rel_dir, link)))
            for filename in sorted(filenames):
                path = os.path.join(dirpath, filename)
                rel = os.path.normpath(os.path.join(rel_dir, filename))
                if path in skipped:
                    continue
                if os.path.islink(path) or not os.path.isfile(path):
                    tar.add(path, arcname=rel, recursive=False)
                    continue
                source = path
                if path in sqlite_files:
                    source = os.path.join(scratch, "sqlite-copy")
                    sqlite_copy(path, source)
                info = tar.gettarinfo(path, arcname=rel)
                size, sha = file_digest(source)
                info.size = size
                with open(source, "rb") as f:
                    tar.addfile(info, f)
                files.append({"path": rel, "size": size, "sha256": sha, "sqlite": path in sqlite_files})
                if source != path:
                    os.remove(source)
    size, sha = file_digest(out)
    return {"name": name, "size": size, "sha256": sha, "files": files}


def archive(out_dir: str, volumes: dict[str, str]) -> dict[str, Any]:
    os.makedirs(os.path.join(out_dir, "volumes"), exist_ok=True)
    scratch = tempfile.mkdtemp(dir=out_dir, prefix=".scratch-")
    try:
        result = {}
        for name, root in sorted(volumes.items()):
            target = os.path.join(out_dir, "volumes", f"{name}.tar.gz")
            result[name] = archive_volume(name, root, target, scratch)
            result[name]["file"] = f"volumes/{name}.tar.gz"
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read_db(backup_dir: str) -> dict[str, Any]:
    """What the dump's side wrote beside the dump in the same snapshot: rows.tsv (table TAB count), alembic.txt."""
    rows = {}
    with open(os.path.join(backup_dir, "rows.tsv"), encoding="utf-8") as f:
        for line in f:
            if "\t" in line:
                table, _, count = line.rstrip("\n").rpartition("\t")
                rows[table] = int(count)
    alembic_path = os.path.join(backup_dir, "alembic.txt")
    alembic = None
    if os.path.exists(alembic_path):
        with open(alembic_path, encoding="utf-8") as f:
            alembic = f.read().strip() or None
    for name in ("rows.tsv", "alembic.txt"):
        if os.path.exists(os.path.join(backup_dir, name)):
            os.remove(os.path.join(backup_dir, name))
    return {"rows": rows, "alembic": alembic}


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for member in tar.getmembers():
        if member.name.startswith("/") or ".." in member.name.split("/"):
            raise ValueError(f"unsafe path in the archive: {member.name}")
        if member.islnk() and (member.linkname.startswith("/") or ".." in member.linkname.split("/")):
            raise ValueError(f"unsafe hard link in the archive: {member.name} -> {member.linkname}")
        members.append(member)
    return members


def _extract(archive_path: str, target: str) -> None:
    with tarfile.open(archive_path, "r:gz") as tar:
        members = _safe_members(tar)
        # The "tar" filter where Python has filters: owners kept (the app's user must own its files again).
        extra: dict[str, Any] = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        tar.extractall(target, members=members, numeric_owner=True, **extra)


def verify_volume(backup_dir: str, entry: dict[str, Any], scratch: str) -> list[str]:
    """Problems of one volume's archive: its checksum, then each file's after extraction, SQLite's integrity."""
    name = entry["name"]
    path = os.path.join(backup_dir, entry["file"])
    if not os.path.exists(path):
        return [f"volume {name}: {entry['file']} is missing"]
    size, sha = file_digest(path)
    if (size, sha) != (entry["size"], entry["sha256"]):
        return [
            f"volume {name}: {entry['file']} does not match its checksum (sha256 {sha[:12]}, recorded "
            f"{entry['sha256'][:12]})"
        ]
    target = os.path.join(scratch, name)
    os.makedirs(target)
    try:
        _extract(path, target)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return [f"volume {name}: {entry['file']} does not extract ({exc})"]
    problems = []
    recorded = {f["path"] for f in entry["files"]}
    # Before SQLite opens anything: reading a WAL database may create its -shm file.
    for dirpath, _dirs, filenames in os.walk(target):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            rel = os.path.relpath(path, target)
            if rel not in recorded and not os.path.islink(path) and os.path.isfile(path):
                problems.append(f"volume {name}: {rel} is in the archive but not in the manifest")
    for f in entry["files"]:
        extracted = os.path.join(target, f["path"])
        if not os.path.isfile(extracted):
            problems.append(f"volume {name}: {f['path']} is missing from the archive")
            continue
        if file_digest(extracted) != (f["size"], f["sha256"]):
            problems.append(f"volume {name}: {f['path']} does not match its checksum after extraction")
            continue
        if f["sqlite"]:
            try:
                db = sqlite3.connect(f"file:{extracted}?mode=ro", uri=True)
                said = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
                db.close()
            except sqlite3.DatabaseError as exc:
                said = [str(exc)]
            if said != ["ok"]:
                problems.append(f"volume {name}: SQLite integrity_check of {f['path']} said {'; '.join(said[:3])}")
    shutil.rmtree(target, ignore_errors=True)
    return problems


def verify(backup_dir: str, scratch: str) -> list[str]:
    """Every problem of the backup's files against its manifest (the database dump's checksum too)."""
    with open(os.path.join(backup_dir, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    problems = []
    database = manifest.get("database")
    if database is not None:
        path = os.path.join(backup_dir, database["file"])
        if not os.path.exists(path):
            problems.append(f"database: {database['file']} is missing")
        else:
            size, sha = file_digest(path)
            if (size, sha) != (database["size"], database["sha256"]):
                problems.append(
                    f"database: {database['file']} does not match its checksum (sha256 {sha[:12]}, recorded "
                    f"{database['sha256'][:12]})"
                )
    for entry in manifest.get("volumes", {}).values():
        problems += verify_volume(backup_dir, entry, scratch)
    return problems


def restore(backup_dir: str, volumes: dict[str, str]) -> list[str]:
    """Replace the contents of each volume root (never the root itself) with its archive's."""
    with open(os.path.join(backup_dir, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    done = []
    for name, root in sorted(volumes.items()):
        entry = manifest["volumes"][name]
        for child in os.listdir(root):
            path = os.path.join(root, child)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        _extract(os.path.join(backup_dir, entry["file"]), root)
        done.append(name)
    return done


def list_backups(root: str) -> list[dict[str, Any]]:
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name, MANIFEST)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            manifest = {"id": name, "status": "unreadable"}
        for entry in manifest.get("volumes", {}).values():
            entry.pop("files", None)
        found.append(manifest)
    return found


def remove_backups(root: str, ids: list[str]) -> list[str]:
    """Delete the directories of the backups ``ids`` (plain names only: never a path out of ``root``)."""
    removed = []
    for backup_id in ids:
        if not backup_id or "/" in backup_id or backup_id.startswith("."):
            raise ValueError(f"not a backup id: {backup_id!r}")
        path = os.path.join(root, backup_id)
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed.append(backup_id)
    return removed


def _pairs(args: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args)


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    result: Any
    if command == "archive":
        result = archive(args[0], _pairs(args[1:]))
    elif command == "hash":
        size, sha = file_digest(args[0])
        result = {"size": size, "sha256": sha}
    elif command == "read_db":
        result = read_db(args[0])
    elif command == "verify":
        os.makedirs(args[1], exist_ok=True)
        result = verify(args[0], args[1])
    elif command == "restore":
        result = restore(args[0], _pairs(args[1:]))
    elif command == "list":
        result = list_backups(args[0])
    elif command == "remove":
        result = remove_backups(args[0], args[1:])
    elif command == "rename":
        os.replace(args[0], args[1])
        result = None
    else:
        sys.stderr.write(f"unknown command {command}\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
