"""Scheduled backups for real (backups/schedule): the fastapi-postgres template with a backup every minute, on the real
engine, Traefik, Pebble and PostgreSQL. No composekit command runs while the stack backs itself up (the test reads the
backups volume with `docker run` until a backup appears): the `backup` service (the app's image, no network) and
`backup-db` (the database image) make it, verify it (pg_restore into a temporary cluster, row counts compared) and
write the manual path's manifest, so `backups` lists it, `status` shows its age and `restore` brings deleted rows back.
Then the database is stopped: the next scheduled backup exits 1, `composekit logs backup` says why, and it never
becomes the latest backup. Waits are bounded by the minute schedule (about 70 s each)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import REPO, Stack, TestEnv

pytestmark = pytest.mark.integration

PG_TEMPLATE = REPO / "stacks" / "fastapi-postgres"
# Reads every manifest of the backups volume (the test's own view, not composekit's).
_READ = (
    "import json, os, sys\n"
    "out = []\n"
    "for n in sorted(os.listdir('/b')):\n"
    "    p = os.path.join('/b', n, 'manifest.json')\n"
    "    if os.path.isfile(p):\n"
    "        out.append(json.load(open(p)))\n"
    "print(json.dumps(out))\n"
)


def _remove_backups_volume(name: str) -> None:
    # Test-owned: this module's backups volume (external: `down --delete-volumes` keeps it, on purpose).
    for helper in subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=composekit.backup={name}"], capture_output=True, text=True
    ).stdout.split():
        subprocess.run(["docker", "rm", "-f", "-v", helper], capture_output=True, timeout=60)
    subprocess.run(["docker", "volume", "rm", f"{name}_backups"], capture_output=True, timeout=60)


def _manifests(stack: Stack) -> list[dict[str, Any]]:
    found = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{stack.name}_backups:/b:ro", stack.env.python_image, "python3", "-c", _READ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(found.stdout))


def _wait(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    seen = probe()
    while not seen and time.monotonic() < deadline:
        time.sleep(3)
        seen = probe()
    assert seen, f"after {timeout:g} s: no {what}"
    return seen


def _db(stack: Stack) -> str:
    return str(stack.containers()["db"])


@pytest.fixture(scope="module")
def pg(make_stack: Any, testenv: TestEnv) -> Iterator[Stack]:
    stack: Stack = make_stack(
        PG_TEMPLATE,
        "bks-pg",
        images={"postgres": testenv.postgres_image},
        backups={"schedule": "* * * * *", "timeout": 300},
    )
    _remove_backups_volume(stack.name)
    (stack.dir / "secrets").mkdir()
    (stack.dir / "secrets" / "db_password").write_text("bks-test-password\n")
    try:
        stack.ck("up", "--no-smoke", timeout=600)
        stack.wait_https("/")
        yield stack
    finally:
        stack.ck("down", "--delete-volumes", check=False, timeout=180)
        _remove_backups_volume(stack.name)


def test_the_stack_backs_itself_up_and_the_backup_restores(pg: Stack) -> None:
    for text in ("one", "two", "three"):
        assert pg.https("/notes", method="POST", json={"text": text}).status_code == 201

    def scheduled_with_rows() -> list[dict[str, Any]]:
        return [
            m
            for m in _manifests(pg)
            if m.get("kind") == "scheduled"
            and m.get("status") == "verified"
            and m["database"]["rows"].get("public.notes") == 3
        ]

    # A minute boundary, then the dump, the archives and the verification (about 15 s here).
    manifest = _wait("verified scheduled backup holding the 3 rows", scheduled_with_rows, 110)[0]
    backup_id = manifest["id"]
    # As `composekit backup` verifies this template (its migration is no Alembic one: no migration state to compare).
    assert manifest["verification"]["checks"] == [
        "checksums of every file",
        "pg_restore into a temporary PostgreSQL",
        "row counts of 2 tables equal those at dump time",
    ]
    assert manifest["verification"]["problems"] == []
    # The release and migration records of the routes volume, as the manual path records them.
    assert manifest["release"] is not None and manifest["migration"]["release"] == manifest["release"]
    assert "bks-test-password" not in json.dumps(manifest)

    listed = {b["id"]: b for b in json.loads(pg.ck("backups", "--json").stdout)}
    assert (listed[backup_id]["status"], listed[backup_id]["kind"]) == ("verified", "scheduled")
    # The newest verified backup (a later minute's may have come meanwhile), made by the schedule, and its age.
    status = pg.ck("status").stderr
    latest = status.split("last verified backup: ", 1)[1].split(",")[0]
    assert latest >= backup_id and {m["id"]: m for m in _manifests(pg)}[latest]["kind"] == "scheduled", status
    assert " h old" in status.split("last verified backup: ", 1)[1].splitlines()[0], status
    logs = pg.ck("logs", "backup").stdout
    assert f"backup | backup {backup_id} verified" in logs and "backup | exited 0" in logs, logs[-3000:]

    pg.docker.container.execute(_db(pg), ["psql", "-U", "notes", "-d", "notes", "-c", "DELETE FROM notes"])
    assert pg.https("/notes").json() == []
    restored = pg.ck("restore", backup_id, timeout=600)
    assert f"backup {backup_id} restored" in restored.stderr
    assert [n["text"] for n in pg.wait_https("/notes").json()] == ["one", "two", "three"]


def test_a_scheduled_backup_without_its_database_exits_1_says_why_and_is_never_the_latest(pg: Stack) -> None:
    db = _db(pg)
    pg.docker.container.stop(db)
    try:
        stopped = time.time()

        def failed_run() -> str | None:
            logs = pg.ck("logs", "backup").stdout
            failure = "backup | scheduled backup failed: pg_dump of the database failed: "
            if failure not in logs:
                return None
            after = logs[logs.index(failure) :]
            return after if "backup | exited 1" in after else None

        logs = _wait("failed scheduled backup in `composekit logs backup`", failed_run, 100)
        assert "db" in logs.splitlines()[0], logs[:500]  # psql's message names the host it could not reach
        before = pg.ck("logs", "backup").stdout
        failed_id = (
            before[: before.index("backup | scheduled backup failed")].rsplit("backup | backup ", 1)[1].split(":")[0]
        )
        assert failed_id not in {m["id"] for m in _manifests(pg)}  # the partial backup was removed
        latest = pg.ck("restore", "latest", "--dry-run", check=False).stderr
        assert f"restore of backup {failed_id}" not in latest
        assert time.time() - stopped < 110
    finally:
        pg.docker.container.start(db)
