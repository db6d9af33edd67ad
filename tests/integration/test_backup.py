"""Backups for real: `composekit backup`, `backups`, `restore` on the real engine, Traefik, Pebble and PostgreSQL.

The fastapi-postgres template (one deployment for the PostgreSQL tests, with a migrate/state_command that prints
app/environment's STATE, so the test sets the migration state each release records, and backups/keep: 2): rows
written, a backup
verified (pg_restore into a throwaway PostgreSQL, row counts compared), the rows deleted, the restore brings them
back with the app serving; a byte flipped in a dump fails its verification, which says so, and that backup is not
the latest; a restore across migration states is refused without --yes. Then the fastapi template (SQLite in the
`data` volume) over SSH (the test sshd): a backup downloaded, the database file deleted, the restore brings it back.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import REPO, Stack, TestEnv
from .sshd import ALIAS, ssh_config  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

PG_TEMPLATE = REPO / "stacks" / "fastapi-postgres"
SQLITE_TEMPLATE = REPO / "stacks" / "fastapi"
STATE_COMMAND = ["python3", "-c", "import os; print(os.environ['STATE'])"]


def _remove_backups_volume(name: str) -> None:
    # Test-owned: the backups volume of this module's stacks (`down --delete-volumes` keeps it, on purpose).
    for helper in subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=composekit.backup={name}"], capture_output=True, text=True
    ).stdout.split():
        subprocess.run(["docker", "rm", "-f", "-v", helper], capture_output=True, timeout=60)
    subprocess.run(["docker", "volume", "rm", f"{name}_backups"], capture_output=True, timeout=60)


def _backups(stack: Stack) -> list[dict[str, Any]]:
    return list(json.loads(stack.ck("backups", "--json").stdout))


def _backup(stack: Stack) -> str:
    result = stack.ck("backup", timeout=300)
    backup_id = result.stdout.strip().splitlines()[-1]
    assert f"backup {backup_id} verified" in result.stderr
    return backup_id


@pytest.fixture(scope="module")
def pg(make_stack: Any, testenv: TestEnv) -> Iterator[Stack]:
    stack: Stack = make_stack(
        PG_TEMPLATE,
        "bk-pg",
        images={"postgres": testenv.postgres_image},
        app={"environment": {"STATE": "s1"}},
        migrate={"state_command": STATE_COMMAND},
        backups={"keep": 2},
    )
    _remove_backups_volume(stack.name)
    (stack.dir / "secrets").mkdir()
    (stack.dir / "secrets" / "db_password").write_text("bk-test-password\n")
    stack.ck("up", "--no-smoke")
    stack.wait_https("/")
    yield stack
    _remove_backups_volume(stack.name)


def _psql(stack: Stack, sql: str) -> str:
    return str(
        stack.docker.container.execute(
            stack.containers()["db"], ["psql", "-U", "notes", "-d", "notes", "-tA", "-c", sql]
        )
    ).strip()


def test_a_pg_backup_is_verified_and_restores_deleted_rows(pg: Stack) -> None:
    for text in ("one", "two", "three"):
        assert pg.https("/notes", method="POST", json={"text": text}).status_code == 201
    # Before any backup, with backups: configured, smoke fails on the missing backup.
    smoke = pg.ck("smoke", "--json", check=False)
    assert smoke.returncode == 1
    age = next(c for c in json.loads(smoke.stdout)["checks"] if c["name"] == "backup age")
    assert (age["status"], age["detail"]) == ("fail", "no verified backup on the server")

    backup_id = _backup(pg)
    listed = {b["id"]: b for b in _backups(pg)}
    assert listed[backup_id]["status"] == "verified"
    assert listed[backup_id]["migration"] == "s1"
    manifest = json.loads(
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "-v",
                f"{pg.name}_backups:/b:ro",
                pg.env.python_image,
                "cat",
                f"/b/{backup_id}/manifest.json",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    assert manifest["database"]["rows"]["public.notes"] == 3
    assert manifest["verification"]["problems"] == []
    assert "bk-test-password" not in json.dumps(manifest)
    age = next(c for c in json.loads(pg.ck("smoke", "--json").stdout)["checks"] if c["name"] == "backup age")
    assert age["status"] == "ok" and backup_id in age["detail"]  # the fresh backup passes smoke's age check
    status = pg.ck("status")
    assert f"last verified backup: {backup_id}" in status.stderr

    _psql(pg, "DELETE FROM notes")
    assert pg.https("/notes").json() == []

    dry = pg.ck("restore", backup_id, "--dry-run")
    assert "--dry-run: nothing was changed" in dry.stderr
    assert pg.https("/notes").json() == []

    # While the restore runs, clients get either the app's answer or 503 with Retry-After (the maintenance routes):
    # never a 502 of a stopped container or a refused connection.
    answers: list[tuple[int, str | None]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                answer = pg.https("/notes")
                answers.append((answer.status_code, answer.headers.get("retry-after")))
            except httpx.HTTPError as exc:
                answers.append((0, repr(exc)))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        restored = pg.ck("restore", backup_id, timeout=600)
    finally:
        done.set()
        watcher.join(timeout=30)
    assert f"backup {backup_id} restored" in restored.stderr
    assert "answering 503 with Retry-After: 60" in restored.stderr
    assert (503, "60") in answers, answers
    assert {a for a in answers if a[0] != 200} == {(503, "60")}, answers
    assert answers[-1][0] == 200
    assert [n["text"] for n in pg.wait_https("/notes").json()] == ["one", "two", "three"]
    kinds = {b["kind"] for b in _backups(pg)}
    assert "pre-restore" in kinds  # the safety copy of the data as it was (no rows)


def test_a_corrupted_dump_fails_verification_and_is_not_the_latest(pg: Stack) -> None:
    before = [b["id"] for b in _backups(pg)]
    assert len(before) == 2  # the first backup and the restore's safety backup, both verified
    made = pg.ck("backup", timeout=300)
    backup_id = made.stdout.strip().splitlines()[-1]
    # backups/keep: 2: the third verified backup deletes the oldest
    assert f"deleted 1 older backups (backups/keep is 2): {before[0]}" in made.stderr
    assert [b["id"] for b in _backups(pg)] == [before[1], backup_id]
    flip = (
        "import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0xFF; "
        "open(p, 'wb').write(b)"
    )
    subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{pg.name}_backups:/b",
            pg.env.python_image,
            "python3",
            "-c",
            flip,
            f"/b/{backup_id}/database.dump",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # Still marked verified: a restore checks the files first and refuses before anything changes.
    notes = pg.https("/notes").json()
    damaged = pg.ck("restore", backup_id, check=False, timeout=300)
    assert damaged.returncode == 1
    assert (
        f"backup {backup_id} no longer matches its manifest (database: database.dump does not match" in damaged.stderr
    )
    assert "nothing was changed" in damaged.stderr
    assert "stopping the app" not in damaged.stderr
    assert pg.https("/notes").json() == notes
    verified = pg.ck("backup", "--verify", backup_id, check=False, timeout=300)
    assert verified.returncode == 1
    assert f"backup {backup_id} failed its verification" in verified.stderr
    assert "database.dump does not match its checksum" in verified.stderr
    listed = {b["id"]: b for b in _backups(pg)}
    assert listed[backup_id]["status"] == "failed"
    latest = pg.ck("restore", "latest", "--dry-run")
    assert f"restore of backup {backup_id}" not in latest.stderr
    refused = pg.ck("restore", backup_id, "--dry-run", check=False)
    assert refused.returncode == 1
    assert f"backup {backup_id} is failed, not verified" in refused.stderr


def test_a_restore_across_migration_states_is_refused_without_yes(pg: Stack) -> None:
    at_s1 = _backup(pg)
    (pg.dir / "s2.yaml").write_text(yaml.safe_dump({"app": {"environment": {"STATE": "s2"}}}))
    pg.ck("up", "--no-smoke", extra_config=("s2.yaml",))
    refused = pg.ck("restore", at_s1, check=False, extra_config=("s2.yaml",))
    assert refused.returncode == 1
    assert f"backup {at_s1} was taken at migration state s1, the serving release's database is at s2" in refused.stderr
    assert "roll back to it" in refused.stderr and "nothing was changed" in refused.stderr
    allowed = pg.ck("restore", at_s1, "--yes", "--dry-run", extra_config=("s2.yaml",))
    assert "(--yes)" in allowed.stderr and "--dry-run: nothing was changed" in allowed.stderr
    missing = pg.ck("restore", "20990101T000000Z", check=False, extra_config=("s2.yaml",))
    assert "there is no backup '20990101T000000Z'" in missing.stderr and at_s1 in missing.stderr


def test_with_every_volume_destroyed_a_restore_brings_the_data_back(pg: Stack) -> None:
    """The server lost: `down --delete-volumes` deletes the database's volume (the backups volume is kept, as on a
    server whose backups survive or were brought back), `up` starts an empty database, the restore fills it."""
    s2 = ("s2.yaml",)  # the module's stack serves at migration state s2 since the test before
    assert pg.https("/notes", method="POST", json={"text": "survivor"}).status_code == 201
    made = pg.ck("backup", timeout=300, extra_config=s2)
    backup_id = made.stdout.strip().splitlines()[-1]
    assert f"backup {backup_id} verified" in made.stderr
    pg.ck("down", "--delete-volumes", timeout=300, extra_config=s2)
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"name={pg.name}_"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert f"{pg.name}_db-data" not in volumes and f"{pg.name}_backups" in volumes, volumes
    pg.ck("up", "--no-smoke", timeout=600, extra_config=s2)
    assert pg.wait_https("/notes").json() == []  # a new, empty database
    restored = pg.ck("restore", backup_id, timeout=600, extra_config=s2)
    assert f"backup {backup_id} restored" in restored.stderr
    assert "survivor" in [n["text"] for n in pg.wait_https("/notes").json()]


def test_over_ssh_a_sqlite_volume_backup_downloads_and_restores_a_deleted_database(
    ssh_config: Path,  # noqa: F811
    make_stack: Any,
    tmp_path: Path,
) -> None:
    """The fastapi template (SQLite in the `data` volume) on the engine behind the test sshd: every command goes
    through one SSH connection (helpers, docker cp of the manifest and of --download, the restore)."""
    stack: Stack = make_stack(SQLITE_TEMPLATE, "bk-sqlite", host=ALIAS)
    _remove_backups_volume(stack.name)
    try:
        stack.ck("up", "--no-smoke")
        stack.wait_https("/")
        assert stack.https("/notes", method="POST", json={"text": "kept in sqlite"}).status_code == 201
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        result = stack.ck("backup", "--download", str(downloads), timeout=300)
        backup_id = result.stdout.strip().splitlines()[-1]
        manifest = json.loads((downloads / backup_id / "manifest.json").read_text())
        assert manifest["status"] == "verified"
        files = {f["path"]: f for f in manifest["volumes"]["data"]["files"]}
        assert files["app.db"]["sqlite"] is True
        assert (downloads / backup_id / "volumes" / "data.tar.gz").stat().st_size == manifest["volumes"]["data"]["size"]
        subprocess.run(
            ["docker", "run", "--rm", "-v", f"{stack.name}_data:/data", stack.env.python_image, "rm", "/data/app.db"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert stack.https("/notes").status_code == 500  # no table in the fresh, empty file
        stack.ck("restore", backup_id, timeout=600)
        assert stack.wait_https("/notes").json() == [{"id": 1, "text": "kept in sqlite"}]
    finally:
        stack.ck("down", "--delete-volumes", check=False, timeout=120)
        _remove_backups_volume(stack.name)


def test_over_ssh_a_pg_backup_downloads_and_restores_deleted_rows(
    ssh_config: Path,  # noqa: F811
    make_stack: Any,
    testenv: TestEnv,
    tmp_path: Path,
) -> None:
    """The PostgreSQL template on the engine behind the test sshd (issue 21.6): pg_dump on the stack's db network,
    the verification's throwaway PostgreSQL, --download of the dump, and the restore's pg_restore, every command
    through the SSH connection."""
    stack: Stack = make_stack(PG_TEMPLATE, "bk-pg-ssh", host=ALIAS, images={"postgres": testenv.postgres_image})
    _remove_backups_volume(stack.name)
    (stack.dir / "secrets").mkdir()
    (stack.dir / "secrets" / "db_password").write_text("bk-ssh-password\n")
    try:
        stack.ck("up", "--no-smoke")
        stack.wait_https("/")
        for text in ("over", "ssh"):
            assert stack.https("/notes", method="POST", json={"text": text}).status_code == 201
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        result = stack.ck("backup", "--download", str(downloads), timeout=300)
        backup_id = result.stdout.strip().splitlines()[-1]
        manifest = json.loads((downloads / backup_id / "manifest.json").read_text())
        assert manifest["status"] == "verified"
        assert manifest["database"]["rows"]["public.notes"] == 2
        dump = downloads / backup_id / "database.dump"
        assert dump.stat().st_size == manifest["database"]["size"]
        assert hashlib.sha256(dump.read_bytes()).hexdigest() == manifest["database"]["sha256"]
        assert "bk-ssh-password" not in json.dumps(manifest)
        stack.docker.container.execute(
            stack.containers()["db"], ["psql", "-U", "notes", "-d", "notes", "-c", "DELETE FROM notes"]
        )
        assert stack.https("/notes").json() == []
        listed = stack.ck("backups", "--json")
        assert [b["id"] for b in json.loads(listed.stdout)] == [backup_id]
        restored = stack.ck("restore", backup_id, timeout=600)
        assert f"backup {backup_id} restored" in restored.stderr
        assert [n["text"] for n in stack.wait_https("/notes").json()] == ["over", "ssh"]
    finally:
        stack.ck("down", "--delete-volumes", check=False, timeout=120)
        _remove_backups_volume(stack.name)
