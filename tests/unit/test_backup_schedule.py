"""Scheduled backups (backups/schedule, render/backup.py, runtime/backup_job.py): the config's messages word for word,
the services in compose.yaml only with a schedule (confined, no secret in any rendered file), the retention rule
(keep: N and {daily, weekly}) as a pure function, and the job against a fake backup-db agent: a verified backup with
the manual path's manifest, a dump that fails leaves nothing and says why, a row count that differs fails it."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config import parse_config
from composekit.config.project import Project, load_project
from composekit.engine.backup_manifest import BackupInfo, new_backup_id, retention
from composekit.errors import ConfigError
from composekit.render.backup_sql import agent_script, count_script, dump_script
from composekit.render.stack import render_stack
from composekit.runtime import backup_job, backup_worker

MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
ENGINE = Path(__file__).resolve().parents[2] / "composekit" / "engine"


def error_of(backups: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "backups": backups})
    return str(info.value)


@pytest.mark.parametrize(
    ("backups", "message"),
    [
        (
            {"schedule": "0 25 * * *"},
            "backups/schedule: expected a cron expression of 5 fields (minute hour day-of-month month day-of-week, "
            'such as "*/5 * * * *"; times in UTC), got "0 25 * * *" (bad hour)',
        ),
        (
            {"keep": {}},
            "backups/keep: expected daily and/or weekly (such as {daily: 7, weekly: 4}), or a number of backups",
        ),
        ({"keep": {"daily": 0}}, "backups/keep: daily: expected an integer from 1 to 1000, got 0"),
        ({"keep": {"monthly": 3}}, "backups/keep: monthly: unknown key (expected daily and/or weekly)"),
        (
            {"keep": "7d"},
            'backups/keep: expected a number of backups from 1 to 1000, or {daily: N, weekly: N}, got "7d"',
        ),
        ({"keep": 0}, "backups/keep: expected a number of backups from 1 to 1000, or {daily: N, weekly: N}, got 0"),
        (
            {"keep": True},
            "backups/keep: expected a number of backups from 1 to 1000, or {daily: N, weekly: N}, got true",
        ),
        ({"timeout": 10}, "backups/timeout: expected a number of seconds from 60 to 86400, got 10"),
    ],
)
def test_backups_schedule_and_keep_errors(backups: Any, message: str) -> None:
    assert message in error_of(backups)


def test_keep_accepts_a_number_or_daily_and_weekly() -> None:
    config = parse_config({**MINIMAL, "backups": {"schedule": "0 3 * * *", "keep": {"daily": 7, "weekly": 4}}})
    assert config.backups is not None
    assert config.backups.keep_rule() == {"daily": 7, "weekly": 4}
    assert parse_config({**MINIMAL, "backups": {"keep": 3}}).backups.keep_rule() == 3  # type: ignore[union-attr]


# Rendering -----------------------------------------------------------------------------------------------------

CONFIG = """\
name: shop
domain: shop.example.com
app:
  module: app.main:app
  volumes: {data: /data}
  secrets: {API_KEY: secrets/api_key}
migrate: {command: alembic upgrade head}
database: {password_file: secrets/db_password}
backups: {schedule: "0 3 * * *", keep: {daily: 7, weekly: 4}, timeout: 900}
"""


def project_in(tmp_path: Path, config: str = CONFIG) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "api_key").write_text("k3y-value\n")
    (tmp_path / "secrets" / "db_password").write_text("db-pw-value\n")
    (tmp_path / "composekit.yaml").write_text(config)
    return load_project((tmp_path / "composekit.yaml",))


def test_a_schedule_renders_backup_and_backup_db_confined_and_without_secrets(tmp_path: Path) -> None:
    rendered = render_stack(project_in(tmp_path))
    doc = yaml.safe_load(rendered.compose)
    backup, agent = doc["services"]["backup"], doc["services"]["backup-db"]
    assert backup["image"] == doc["services"]["app"]["image"] and backup["pull_policy"] == "never"
    assert backup["network_mode"] == "none" and "networks" not in backup
    assert backup["cap_drop"] == ["ALL"] and backup["cap_add"] == ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"]
    assert backup["read_only"] is True and "environment" not in backup and "secrets" not in backup
    assert backup["volumes"][1:] == ["backups:/backups", "routes:/routes:ro", "data:/volumes/data"]
    assert backup["stop_grace_period"] == "920s"
    script, state, jobs = backup["command"]
    assert (script, state) == ("/etc/composekit/scheduler.py", "/backups/.schedule")
    # $$: Compose's escape of $ (render/text.py literal); the shell gets "$@".
    assert backup["entrypoint"] == ["sh", "-c", 'mkdir -p /backups/.schedule && exec python3 "$$@"', "scheduler"]
    job = json.loads(jobs)["backup"]
    assert (job["cron"], job["timeout"]) == ("0 3 * * *", 900)
    settings = json.loads(job["argv"][2])
    assert job["argv"][:2] == ["python3", "/etc/composekit/backup_job.py"]
    assert settings["keep"] == {"daily": 7, "weekly": 4}
    assert settings["database"] == {"name": "app", "image": "postgres:17"}
    assert settings["volumes"] == {"data": "/volumes/data"} and settings["alembic_state"] is True
    # backup-db: the database image on the internal db network only, the password from the files volume at run time.
    assert agent["image"] == "postgres:17" and agent["networks"] == ["db"]
    assert agent["entrypoint"] == ["bash", "/etc/composekit/backup_agent.sh"]
    assert agent["environment"] == {"PGHOST": "db", "PGUSER": "app", "PGDATABASE": "app"}
    assert agent["cap_drop"] == ["ALL"] and "ports" not in agent
    assert doc["volumes"]["backups"] == {"name": "shop_backups", "external": True}
    files = doc["services"]["files"]["command"]
    for name in ("scheduler.py", "cronsim.py", "backup_job.py", "backup_worker.py", "backup_manifest.py"):
        assert f"/etc/composekit/{name}" in files
    everything = rendered.compose + "".join(rendered.files.values())
    assert "db-pw-value" not in everything and "k3y-value" not in everything


def test_no_schedule_renders_no_backup_service(tmp_path: Path) -> None:
    doc = yaml.safe_load(render_stack(project_in(tmp_path, CONFIG.replace('schedule: "0 3 * * *", ', ""))).compose)
    assert "backup" not in doc["services"] and "backup-db" not in doc["services"]
    assert "backups" not in doc["volumes"] and "backup_job.py" not in doc["configs"]


def test_without_a_database_only_the_backup_service(tmp_path: Path) -> None:
    config = CONFIG.replace("database: {password_file: secrets/db_password}\n", "").replace(
        "migrate: {command: alembic upgrade head}\n", ""
    )
    doc = yaml.safe_load(render_stack(project_in(tmp_path, config)).compose)
    assert "backup-db" not in doc["services"]
    assert json.loads(json.loads(doc["services"]["backup"]["command"][2])["backup"]["argv"][2])["database"] is None
    assert "backup-db" not in doc["services"]["backup"]["depends_on"]


def test_backup_is_a_reserved_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "processes": {"backup-db": "python -m worker"}})
    assert '"backup-db" is one of composekit\'s own services' in str(info.value)


def test_the_manifest_module_ships_with_the_standard_library_only() -> None:
    """backup_manifest.py runs inside the backup service (runtime/backup_job.py loads it from the files volume)."""
    tree = ast.parse((ENGINE / "backup_manifest.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))  # no relative import
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_the_agent_runs_the_manual_paths_dump_and_count_sql() -> None:
    agent = agent_script()
    dump_body = dump_script("X").split("\n")[3:]
    assert "\n".join(dump_body) in agent
    count_sql = count_script().split("\n")[2:]
    assert "\n".join(count_sql) in agent
    assert "listen_addresses=''" in agent and "setpriv --reuid=postgres" in agent


# Retention -----------------------------------------------------------------------------------------------------


def b(when: str, status: str = "verified") -> BackupInfo:
    return BackupInfo(id=when, status=status, finished=None, size=0, release=None, migration=None)


def daily_series(start: datetime, days: int, per_day: int = 1) -> list[BackupInfo]:
    out = []
    for d in range(days):
        for h in range(per_day):
            out.append(b(new_backup_id(start + timedelta(days=d, hours=3 + h), [])))
    return out


def test_keep_daily_keeps_the_newest_of_each_of_the_newest_days() -> None:
    backups = daily_series(datetime(2026, 12, 1, tzinfo=UTC), 10, per_day=2)  # 03:00 and 04:00 each day
    deleted = retention(backups, {"daily": 3}, made=backups[-1].id)
    kept = [x.id for x in backups if x.id not in deleted]
    assert kept == ["20261208T040000Z", "20261209T040000Z", "20261210T040000Z"]


def test_keep_weekly_keeps_the_newest_of_each_iso_week() -> None:
    # 2026-11-30 is a Monday: 21 days = 3 ISO weeks.
    backups = daily_series(datetime(2026, 11, 30, tzinfo=UTC), 21)
    deleted = retention(backups, {"daily": 2, "weekly": 3})
    kept = [x.id for x in backups if x.id not in deleted]
    # Sundays 6 and 13 December close their weeks; the 19th and 20th are the two newest days (20th: week 3's newest).
    assert kept == ["20261206T030000Z", "20261213T030000Z", "20261219T030000Z", "20261220T030000Z"]


def test_failed_backups_stay_until_older_than_every_kept_one() -> None:
    backups = [
        b("20261201T030000Z"),
        b("20261201T120000Z", "failed"),
        b("20261202T030000Z"),
        b("20261202T120000Z", "failed"),
        b("20261203T030000Z"),
    ]
    assert retention(backups, {"daily": 2}) == ["20261201T030000Z", "20261201T120000Z"]
    assert retention(backups, 2) == ["20261201T030000Z", "20261201T120000Z"]


def test_never_the_backup_just_made_nor_the_newest_verified() -> None:
    # A backup made for a day that already has a newer one (clock skew, a restore's safety backup) is kept.
    backups = [b("20261201T030000Z"), b("20261202T010000Z"), b("20261202T030000Z"), b("20261203T030000Z")]
    deleted = retention(backups, {"daily": 1}, made="20261202T010000Z")
    assert "20261202T010000Z" not in deleted and "20261203T030000Z" not in deleted
    assert deleted == ["20261201T030000Z", "20261202T030000Z"]
    assert retention([b("20261201T030000Z", "failed")], {"daily": 1}) == []  # nothing verified: nothing deleted


def test_unreadable_ids_are_never_deleted() -> None:
    backups = [b("not-an-id"), b("20261201T030000Z"), b("20261203T030000Z")]
    assert retention(backups, 1) == ["20261201T030000Z"]


# The job, against a fake backup-db -----------------------------------------------------------------------------


class FakeAgent:
    """Answers the job's requests in the queue as render/backup_sql.py agent_script does (without PostgreSQL)."""

    def __init__(self, queue: Path, counts: str = "public.notes\t3\nalembic=\nabc123\n", dump_fails: bool = False):
        self.queue, self.counts, self.dump_fails = queue, counts, dump_fails
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        while not self.stop.is_set():
            for request in sorted(self.queue.glob("*.request")) if self.queue.is_dir() else []:
                verb, backup_id = request.read_text().split()
                request.unlink()
                self.seen.append(verb)
                base = str(request)[: -len(".request")]
                out, err, rc = "", "", 0
                if verb == "dump" and self.dump_fails:
                    err, rc = 'psql: error: could not translate host name "db" to address', 2
                elif verb == "dump":
                    directory = self.queue.parent / backup_id
                    (directory / "database.dump").write_bytes(b"PGDMP fake dump")
                    (directory / "rows.tsv").write_text("public.notes\t3\n")
                    (directory / "alembic.txt").write_text("abc123\n")
                else:
                    out = self.counts
                Path(base + ".out").write_text(out)
                Path(base + ".err").write_text(err)
                Path(base + ".rc.tmp").write_text(f"{rc}\n")
                os.replace(base + ".rc.tmp", base + ".rc")
            time.sleep(0.05)


@pytest.fixture
def job_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    backups, routes, data = tmp_path / "backups", tmp_path / "routes", tmp_path / "data"
    for d in (backups, routes, data):
        d.mkdir()
    (routes / "releases.json").write_text(json.dumps([{"id": "r1"}, {"id": "r2"}]))
    (routes / "migration.json").write_text(json.dumps({"release": "r2", "state": "abc123", "at": "x"}))
    (data / "notes.txt").write_text("kept\n")
    monkeypatch.setattr(backup_job, "BACKUPS", str(backups))
    monkeypatch.setattr(backup_job, "QUEUE", str(backups / ".agent"))
    monkeypatch.setattr(backup_job, "ROUTES", str(routes))
    monkeypatch.setattr(backup_job, "POLL", 0.02)
    monkeypatch.setattr(backup_job, "TAKE_WITHIN", 5.0)
    # What the files volume holds beside backup_job.py in the container.
    monkeypatch.setitem(sys.modules, "backup_worker", backup_worker)
    monkeypatch.syspath_prepend(str(ENGINE))
    return tmp_path


def settings(tmp: Path, keep: Any = None) -> dict[str, Any]:
    return {
        "project": "shop",
        "version": "9.9",
        "timeout": 60,
        "keep": keep,
        "database": {"name": "app", "image": "postgres:17"},
        "volumes": {"data": str(tmp / "data")},
        "alembic_state": True,
    }


def run_job(tmp: Path, agent: FakeAgent, keep: Any = None) -> tuple[int, str]:
    agent.thread.start()
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            code = backup_job.main([json.dumps(settings(tmp, keep))])
    finally:
        agent.stop.set()
        agent.thread.join()
    return code, buffer.getvalue()


def test_the_job_makes_a_verified_backup_with_the_manual_manifest(job_dirs: Path) -> None:
    agent = FakeAgent(job_dirs / "backups" / ".agent")
    code, out = run_job(job_dirs, agent)
    assert code == 0, out
    assert agent.seen == ["dump", "verify"]
    (backup_id,) = [p.name for p in (job_dirs / "backups").iterdir() if not p.name.startswith(".")]
    assert out.strip().splitlines()[-1] == f"backup {backup_id} verified"
    manifest = json.loads((job_dirs / "backups" / backup_id / "manifest.json").read_text())
    assert (manifest["kind"], manifest["status"], manifest["release"]) == ("scheduled", "verified", "r2")
    assert manifest["migration"]["state"] == "abc123"
    assert manifest["database"]["rows"] == {"public.notes": 3} and manifest["database"]["alembic"] == "abc123"
    assert manifest["verification"]["checks"][-2:] == [
        "row counts of 1 tables equal those at dump time",
        "migration state equals the manifest's",
    ]
    assert [f["path"] for f in manifest["volumes"]["data"]["files"]] == ["notes.txt"]
    assert sorted(os.listdir(job_dirs / "backups" / ".agent")) == []  # every request cleaned up


def test_a_failed_dump_exits_1_says_why_and_leaves_no_backup(job_dirs: Path) -> None:
    code, out = run_job(job_dirs, FakeAgent(job_dirs / "backups" / ".agent", dump_fails=True))
    assert code == 1
    assert out.strip().splitlines()[-1] == (
        'scheduled backup failed: pg_dump of the database failed: psql: error: could not translate host name "db" '
        "to address"
    )
    assert [p.name for p in (job_dirs / "backups").iterdir() if not p.name.startswith(".")] == []


def test_a_row_count_that_differs_fails_the_backup_which_stays_marked_failed(job_dirs: Path) -> None:
    agent = FakeAgent(job_dirs / "backups" / ".agent", counts="public.notes\t2\nalembic=\nabc123\n")
    code, out = run_job(job_dirs, agent, keep=1)
    assert code == 1
    assert "database: table public.notes has 2 rows after the restore, 3 at dump time" in out.splitlines()[-1]
    listed = backup_worker.list_backups(str(job_dirs / "backups"))
    assert [m["status"] for m in listed] == ["failed"]


def test_retention_runs_after_a_verified_scheduled_backup(job_dirs: Path) -> None:
    old = job_dirs / "backups" / "20200101T030000Z"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"id": old.name, "status": "verified"}))
    code, out = run_job(job_dirs, FakeAgent(job_dirs / "backups" / ".agent"), keep={"daily": 1})
    assert code == 0, out
    assert f"deleted 1 older backups (backups/keep is {{daily: 1}}): {old.name}" in out
    assert not old.exists()


def test_no_agent_fails_with_the_fix(job_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_job, "TAKE_WITHIN", 0.2)
    agent = FakeAgent(job_dirs / "nowhere")
    code, out = run_job(job_dirs, agent)
    assert code == 1
    assert "the backup-db service did not take the dump request within 0.2 s: is it running?" in out
