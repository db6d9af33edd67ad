"""runtime/backup_worker.py, run here on temporary directories (it is the standard library only): volumes archived
with SQLite copied through its backup API, verified against the manifest after extraction, restored."""

from __future__ import annotations

import json
import os
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from composekit.runtime import backup_worker as worker


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "data"
    (root / "uploads" / "deep").mkdir(parents=True)
    (root / "uploads" / "deep" / "a.txt").write_text("hello")
    (root / "notes.txt").write_bytes(b"\x00\x01 binary")
    db = sqlite3.connect(root / "app.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    db.executemany("INSERT INTO notes (text) VALUES (?)", [("one",), ("two",)])
    db.commit()
    os.symlink("notes.txt", root / "link")
    # Left open: the rows live in app.db-wal, which a plain file copy of app.db would miss.
    yield root
    db.close()


def _backup(tmp_path: Path, root: Path) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "backups" / "20261203T110000Z"
    out.mkdir(parents=True)
    result = worker.archive(str(out), {"data": str(root)})
    manifest = {"id": out.name, "database": None, "volumes": result}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, manifest


def test_sqlite_is_copied_through_its_backup_api_and_sidecars_left_out(tmp_path: Path, volume: Path) -> None:
    assert (volume / "app.db-wal").exists()
    out, manifest = _backup(tmp_path, volume)
    files = {f["path"]: f for f in manifest["volumes"]["data"]["files"]}
    assert set(files) == {"app.db", "notes.txt", "uploads/deep/a.txt"}
    assert files["app.db"]["sqlite"] and not files["notes.txt"]["sqlite"]
    with tarfile.open(out / "volumes" / "data.tar.gz") as tar:
        names = tar.getnames()
        assert "app.db-wal" not in names and "app.db-shm" not in names
        assert tar.getmember("link").issym()
        tar.extract("app.db", tmp_path / "x")
    copy = sqlite3.connect(tmp_path / "x" / "app.db")
    assert [r[0] for r in copy.execute("SELECT text FROM notes ORDER BY id")] == ["one", "two"]


def test_a_whole_backup_verifies(tmp_path: Path, volume: Path) -> None:
    out, _ = _backup(tmp_path, volume)
    assert worker.verify(str(out), str(tmp_path / "scratch")) == []


def test_a_flipped_byte_in_an_archive_fails_verification(tmp_path: Path, volume: Path) -> None:
    out, _ = _backup(tmp_path, volume)
    archive = out / "volumes" / "data.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    problems = worker.verify(str(out), str(tmp_path / "scratch"))
    assert len(problems) == 1 and problems[0].startswith("volume data: volumes/data.tar.gz does not match its checksum")


def test_a_file_that_differs_from_the_manifest_fails_verification(tmp_path: Path, volume: Path) -> None:
    out, manifest = _backup(tmp_path, volume)
    entry = manifest["volumes"]["data"]
    entry["files"] = [f for f in entry["files"] if f["path"] != "notes.txt"]
    next(f for f in entry["files"] if f["path"] == "app.db")["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert worker.verify(str(out), str(tmp_path / "scratch")) == [
        "volume data: notes.txt is in the archive but not in the manifest",
        "volume data: app.db does not match its checksum after extraction",
    ]


def test_a_corrupt_sqlite_file_fails_its_integrity_check(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    db = sqlite3.connect(root / "app.db")
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(200)])
    db.execute("CREATE INDEX i ON t (x)")
    db.commit()
    db.close()
    out, manifest = _backup(tmp_path, root)
    # Rewrite the archive with a page of the copy damaged, and record its checksums: only SQLite can tell.
    scratch = tmp_path / "bad"
    with tarfile.open(out / "volumes" / "data.tar.gz") as tar:
        tar.extractall(scratch)
    raw = bytearray((scratch / "app.db").read_bytes())
    raw[4096 * 3 : 4096 * 3 + 200] = b"\xff" * 200
    (scratch / "app.db").write_bytes(bytes(raw))
    with tarfile.open(out / "volumes" / "data.tar.gz", "w:gz") as tar:
        tar.add(scratch / "app.db", arcname="app.db")
    entry = manifest["volumes"]["data"]
    entry["size"], entry["sha256"] = worker.file_digest(str(out / "volumes" / "data.tar.gz"))
    entry["files"][0]["size"], entry["files"][0]["sha256"] = worker.file_digest(str(scratch / "app.db"))
    (out / "manifest.json").write_text(json.dumps(manifest))
    problems = worker.verify(str(out), str(tmp_path / "scratch"))
    assert len(problems) == 1 and problems[0].startswith("volume data: SQLite integrity_check of app.db said")


def test_restore_replaces_the_contents_and_keeps_the_volume(tmp_path: Path, volume: Path) -> None:
    out, _ = _backup(tmp_path, volume)
    for name in ("app.db", "app.db-wal", "app.db-shm"):
        (volume / name).unlink(missing_ok=True)
    (volume / "new.txt").write_text("written after the backup")
    inode = volume.stat().st_ino
    assert worker.restore(str(out), {"data": str(volume)}) == ["data"]
    assert volume.stat().st_ino == inode
    assert not (volume / "new.txt").exists()
    assert (volume / "uploads" / "deep" / "a.txt").read_text() == "hello"
    db = sqlite3.connect(volume / "app.db")
    assert [r[0] for r in db.execute("SELECT text FROM notes ORDER BY id")] == ["one", "two"]


def test_list_leaves_out_the_file_lists_and_unfinished_directories(tmp_path: Path, volume: Path) -> None:
    out, _ = _backup(tmp_path, volume)
    (out.parent / "20261203T120000Z").mkdir()  # no manifest: a backup that never got that far
    listed = worker.list_backups(str(out.parent))
    assert [m["id"] for m in listed] == ["20261203T110000Z"]
    assert "files" not in listed[0]["volumes"]["data"]


def test_an_archive_with_an_unsafe_path_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside")
        tar.addfile(info)
    with pytest.raises(ValueError, match=r"unsafe path in the archive: \.\./outside"):
        worker._extract(str(evil), str(tmp_path / "t"))


def test_remove_deletes_backup_directories_and_refuses_paths(tmp_path: Path) -> None:
    (tmp_path / "20261201T000000Z" / "volumes").mkdir(parents=True)
    (tmp_path / "keep").mkdir()
    assert worker.remove_backups(str(tmp_path), ["20261201T000000Z", "20261202T000000Z"]) == ["20261201T000000Z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    for bad in ("../keep", ".", ""):
        with pytest.raises(ValueError, match="not a backup id"):
            worker.remove_backups(str(tmp_path), [bad])
