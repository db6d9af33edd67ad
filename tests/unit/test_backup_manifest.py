"""Backups' pure decisions (engine/backup_manifest.py): ids, the manifest, the latest verified backup, the age
thresholds, the restore guard; and the row counts the verification compares (engine/backup.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.config.sections import Backups
from composekit.engine.backup import create_backup, require_compose_mode
from composekit.engine.backup_manifest import (
    BackupInfo,
    age_check,
    age_text,
    build_manifest,
    compare_counts,
    find_backup,
    latest_verified,
    new_backup_id,
    parse_backup_id,
    parse_counts,
    parse_manifest,
    restore_guard,
    retention,
    set_verification,
)
from composekit.errors import ConfigError, UserError
from composekit.render.backup_sql import dump_script
from composekit.verify.backup_age import backup_age_result
from composekit.verify.checks import Status

NOW = datetime(2026, 12, 3, 11, 0, 0, tzinfo=UTC)


def info(
    backup_id: str, status: str = "verified", migration: str | None = "s1", release: str | None = "r1"
) -> BackupInfo:
    return BackupInfo(backup_id, status, None, 10, release, migration)


def test_backup_ids_are_utc_seconds_and_distinct() -> None:
    assert new_backup_id(NOW, []) == "20261203T110000Z"
    assert new_backup_id(NOW, ["20261203T110000Z"]) == "20261203T110000Z-2"
    assert new_backup_id(NOW, ["20261203T110000Z", "20261203T110000Z-2"]) == "20261203T110000Z-3"
    assert parse_backup_id("20261203T110000Z-2") == NOW
    for wrong in ("latest", "20261203T110000", "20261303T110000Z", "20261203T110000Z-", "../x"):
        assert parse_backup_id(wrong) is None, wrong


def test_a_manifest_is_pending_until_verified_and_parses_back() -> None:
    manifest = build_manifest(
        backup_id="20261203T110000Z",
        project="shop",
        version="0.1.0",
        started=NOW,
        finished=NOW + timedelta(seconds=5),
        release="abc123",
        migration={"release": "abc123", "state": "0002", "at": "2026-12-03T10:00:00Z"},
        database={"file": "database.dump", "size": 100, "sha256": "aa", "rows": {"public.notes": 3}},
        volumes={"data": {"file": "volumes/data.tar.gz", "size": 50, "sha256": "bb", "files": []}},
    )
    assert manifest["status"] == "pending"
    assert manifest["finished"] == "2026-12-03T11:00:05Z"
    pending = parse_manifest(manifest)
    assert (pending.status, pending.size, pending.migration, pending.release) == ("pending", 150, "0002", "abc123")
    assert not pending.verified
    verified = parse_manifest(set_verification(manifest, [], ["checksums"], NOW))
    assert verified.verified and verified.problems == []
    failed = set_verification(manifest, ["database: database.dump does not match its checksum"], [], NOW)
    assert failed["status"] == "failed"
    assert parse_manifest(failed).problems == ["database: database.dump does not match its checksum"]
    assert parse_manifest({"id": "x", "volumes": "nonsense"}).status == "unreadable"


def test_only_a_verified_backup_counts_as_the_latest() -> None:
    backups = [info("20261201T000000Z"), info("20261202T000000Z"), info("20261203T000000Z", "failed")]
    backups.append(info("20261204T000000Z", "pending"))
    latest = latest_verified(backups)
    assert latest is not None and latest.id == "20261202T000000Z"
    assert find_backup(backups, "latest").id == "20261202T000000Z"
    assert latest_verified([info("20261203T000000Z", "failed")]) is None


def test_a_backup_not_found_lists_the_ids() -> None:
    with pytest.raises(ValueError, match="there is no backup") as exc:
        find_backup([info("20261201T000000Z")], "nope")
    assert str(exc.value) == (
        "there is no backup 'nope' (a backup id looks like 20261203T110000Z); the backups on the server: "
        "20261201T000000Z"
    )
    with pytest.raises(ValueError, match="there is no verified backup"):
        find_backup([info("20261201T000000Z", "failed")], "latest")


@pytest.mark.parametrize(
    ("hours", "status"),
    [(1, "ok"), (26, "ok"), (26.1, "warn"), (72, "warn"), (72.1, "fail")],
)
def test_age_thresholds(hours: float, status: str) -> None:
    taken = NOW - timedelta(hours=hours)
    backup = info(taken.strftime("%Y%m%dT%H%M%SZ"))
    found = age_check(backup, NOW, 26, 72)
    assert found.status == status
    assert found.detail.startswith(f"the last verified backup, {backup.id}, is {age_text(backup, NOW)}")


def test_no_verified_backup_fails_and_says_which_failed() -> None:
    result = backup_age_result([info("20261203T100000Z", "failed")], Backups(), NOW)
    assert result.status is Status.FAIL
    assert result.detail == "no verified backup on the server; failed backups: 20261203T100000Z"
    ok = backup_age_result([info("20261203T100000Z")], Backups(), NOW)
    assert (ok.status, ok.detail) == (Status.OK, "the last verified backup, 20261203T100000Z, is 1.0 h old")
    old = backup_age_result([info("20261129T100000Z")], Backups(warn_hours=1, fail_hours=200), NOW)
    assert old.status is Status.WARN and "is 4.0 days old (warns past 1 h)" in old.detail


def test_backups_section_thresholds_are_ordered() -> None:
    with pytest.raises(ValueError, match=r"warn_hours \(80\) must not exceed fail_hours \(72\)"):
        Backups(warn_hours=80)


def test_restore_guard_same_state_goes() -> None:
    assert restore_guard(info("20261203T100000Z"), "s1", [], yes=False).proceed


def test_restore_guard_refuses_another_state_and_names_the_release_to_deploy() -> None:
    guard = restore_guard(info("20261203T100000Z"), "s2", [("r0", "s1"), ("r1", "s1"), ("r2", "s2")], yes=False)
    assert not guard.proceed
    assert guard.message == (
        "backup 20261203T100000Z was taken at migration state s1, the serving release's database is at s2: the "
        "serving code may not run on the restored database. After the restore, release r1 ran at that state: roll "
        "back to it (`composekit rollback r1 --yes`) or deploy its code. Run `composekit restore 20261203T100000Z "
        "--yes` to restore anyway (nothing was changed)"
    )
    unknown = restore_guard(info("20261203T100000Z", release="abc"), "s2", [("r2", "s2")], yes=False)
    assert "deploy the code of release abc, which the backup was taken from" in (unknown.message or "")
    forced = restore_guard(info("20261203T100000Z"), "s2", [], yes=True)
    assert forced.proceed and "(--yes)" in (forced.message or "")


def test_restore_guard_unknown_state_warns_and_a_failed_backup_is_refused_even_with_yes() -> None:
    guard = restore_guard(info("20261203T100000Z", migration=None), "s2", [], yes=False)
    assert guard.proceed and "the migration state is unknown" in (guard.message or "")
    failed = BackupInfo("20261203T100000Z", "failed", None, 1, None, "s1", problems=["volume data: x"])
    refused = restore_guard(failed, "s1", [], yes=True)
    assert not refused.proceed
    assert refused.message == (
        "backup 20261203T100000Z is failed, not verified (volume data: x): only a verified backup is restored; "
        "choose another (`composekit backups`)"
    )


def test_row_counts_are_parsed_and_compared() -> None:
    rows, alembic = parse_counts("public.notes\t3\npublic.schema_migrations\t1\nalembic=\n0001,0002a\n")
    assert rows == {"public.notes": 3, "public.schema_migrations": 1}
    assert alembic == "0001,0002a"
    assert parse_counts("public.notes\t3\nalembic=\n") == ({"public.notes": 3}, None)
    assert compare_counts({"public.notes": 3}, {"public.notes": 3}) == []
    assert compare_counts({"public.notes": 3, "public.gone": 1}, {"public.notes": 2, "public.new": 0}) == [
        "database: table public.gone (1 rows at dump time) is missing after the restore",
        "database: table public.new is in the restored database but was not counted at dump time",
        "database: table public.notes has 2 rows after the restore, 3 at dump time",
    ]


def test_the_dump_and_the_counts_share_one_snapshot() -> None:
    lines = dump_script("20261203T110000Z").splitlines()
    begin = lines.index("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;")
    export = next(i for i, line in enumerate(lines) if "pg_export_snapshot()" in line)
    dump = next(i for i, line in enumerate(lines) if line.startswith("\\! pg_dump"))
    counts = lines.index("\\o rows.tsv")
    commit = lines.index("COMMIT;")
    assert begin < export < dump < counts < commit
    assert '--snapshot="$COMPOSEKIT_SNAPSHOT"' in lines[dump]
    assert "cd /backups/20261203T110000Z" in lines


def _project(tmp_path: Path, extra: dict[str, Any] | None = None) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}, **(extra or {})}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


class _NoEngine:
    """Any call to the engine fails the test: these refusals come before anything is asked of it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was asked ({name}) before the refusal")


def test_nothing_to_back_up_is_refused_before_the_engine_is_asked(tmp_path: Path) -> None:
    with pytest.raises(UserError) as exc:
        create_backup(_project(tmp_path), _NoEngine())  # type: ignore[arg-type]
    assert str(exc.value) == (
        "nothing to back up: composekit.yaml sets no database: and no app/volumes (composekit's own volumes, routes "
        "and files, are rendered by every `up`; acme.json is not backed up, see docs/backups.md)"
    )


def test_swarm_mode_refuses_backups(tmp_path: Path) -> None:
    swarm = _project(tmp_path, {"mode": "swarm"})
    for command in ("backup", "backups", "restore"):
        with pytest.raises(UserError, match=f"composekit {command} applies to mode: compose only"):
            require_compose_mode(swarm, command)
    (tmp_path / "composekit.yaml").write_text(
        yaml.safe_dump(
            {"name": "s", "domain": "s.example.com", "app": {"module": "a:b"}, "mode": "swarm", "backups": {}}
        )
    )
    with pytest.raises(ConfigError) as exc:
        load_project((tmp_path / "composekit.yaml",))
    assert exc.value.problems == [
        f"{tmp_path / 'composekit.yaml'}: backups: applies to mode: compose only (composekit backup refuses "
        "mode: swarm); remove the section"
    ]


def test_retention_keeps_the_newest_verified_and_nothing_older() -> None:
    backups = [
        info("20261201T000000Z"),
        info("20261202T000000Z", "failed"),
        info("20261203T000000Z"),
        info("20261204T000000Z", "pending"),
        info("20261205T000000Z"),
        info("20261206T000000Z", "failed"),
    ]
    assert retention(backups, 2) == ["20261201T000000Z", "20261202T000000Z"]
    assert retention(backups, 1) == ["20261201T000000Z", "20261202T000000Z", "20261203T000000Z", "20261204T000000Z"]
    assert retention(backups, 3) == []  # only three verified: nothing goes
    assert retention(list(reversed(backups)), 2) == ["20261201T000000Z", "20261202T000000Z"]


def test_age_text() -> None:
    assert age_text(info("20261203T073000Z"), NOW) == "3.5 h old"
    assert age_text(info("20261129T110000Z"), NOW) == "4.0 days old"
    assert age_text(info("20261203T120000Z"), NOW) == "0.0 h old"  # a clock behind the server's


def test_retention_never_deletes_the_backup_a_restore_restores() -> None:
    """keep: 1 and a restore of an older backup: the restore's safety backup is the newest verified, and its
    retention would delete the backup about to be restored."""
    backups = [info("20261201T000000Z"), info("20261202T000000Z"), info("20261203T000000Z", "verified")]
    assert retention(backups, 1, made="20261203T000000Z") == ["20261201T000000Z", "20261202T000000Z"]
    assert retention(backups, 1, made="20261203T000000Z", protect=("20261201T000000Z",)) == ["20261202T000000Z"]
    assert retention(backups, {"daily": 1}, made="20261203T000000Z", protect=("20261202T000000Z",)) == [
        "20261201T000000Z"
    ]


def test_a_restore_stops_what_writes_the_data_and_the_scheduled_backups(tmp_path: Path) -> None:
    from composekit.engine.backup_restore import stopped_services

    base = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(base))
    assert stopped_services(load_project((tmp_path / "composekit.yaml",))) == ["app"]
    full = {
        **base,
        "processes": {"worker": {"command": "python -m worker"}, "mailer": {"command": "python -m mailer"}},
        "schedules": {"report": {"cron": "0 * * * *", "command": "python -m report"}},
        "backups": {"schedule": "0 3 * * *"},
    }
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(full))
    assert stopped_services(load_project((tmp_path / "composekit.yaml",))) == [
        "app",
        "mailer",
        "worker",
        "scheduler",
        "backup",
    ]
