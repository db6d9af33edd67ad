"""schedules/: the validation messages word for word (the cron expression checked by cronsim, the library the
scheduler runs), the one `scheduler` service in compose.yaml (the app's confinement, no port, no front network, its
state volume, its files delivered through the files volume), and runtime/scheduler.py on a fake clock: a gap gives
each missed job one catch-up run, no gap none, a second scheduler waits for the lock, a timed-out run is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from composekit.cli.display import schedules_table
from composekit.config import parse_config
from composekit.config.project import Project, load_project
from composekit.engine.companions import deploy_scheduler
from composekit.engine.docker import ContainerInfo
from composekit.engine.status import ScheduleStatus, StackStatus, schedule_rows
from composekit.errors import ConfigError
from composekit.render.stack import render_stack
from composekit.runtime import scheduler as rt

MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
CRON_EXPECTED = (
    'expected a cron expression of 5 fields (minute hour day-of-month month day-of-week, such as "*/5 * * * *"; '
    "times in UTC)"
)


def error_of(extra: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, **extra})
    return str(info.value)


def job(cron: Any, **more: Any) -> dict[str, Any]:
    return {"schedules": {"cleanup": {"cron": cron, "command": "python -m app.jobs.cleanup", **more}}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (job("61 * * * *"), f'schedules/cleanup/cron: {CRON_EXPECTED}, got "61 * * * *" (bad minute)'),
        (job("* * * *"), f'schedules/cleanup/cron: {CRON_EXPECTED}, got "* * * *"'),
        (job("0 * * * * *"), f'schedules/cleanup/cron: {CRON_EXPECTED}, got "0 * * * * *"'),
        (job("0 0 31 2 *"), f'schedules/cleanup/cron: {CRON_EXPECTED}, got "0 0 31 2 *" (bad day-of-month)'),
        (job(5), f"schedules/cleanup/cron: {CRON_EXPECTED}, got 5"),
        (job("* * * * *", timeout=0), "schedules/cleanup/timeout: expected a number of seconds from 1 to 86400, got 0"),
        (
            {"schedules": {"cleanup": {"cron": "* * * * *", "command": 'echo "x'}}},
            "schedules/cleanup/command: expected a command line whose quotes are closed (no closing quotation), or "
            'a list of arguments, got "echo \\"x"',
        ),
        (
            {"schedules": {"Clean": {"cron": "* * * * *", "command": "x"}}},
            'schedules: expected schedule names of lowercase letters, digits and "-" (a DNS label, at most 63 '
            'characters), got "Clean"',
        ),
        (
            {"processes": {"cleanup": "x"}, **job("* * * * *")},
            "schedules: cleanup: is also the name of a process; give the schedule another name",
        ),
        (
            {"processes": {"scheduler": "x"}},
            'processes: scheduler: "scheduler" is one of composekit\'s own services (app, migrate, db, traefik, '
            "routes, files, socket-proxy, scheduler, backup, backup-db); give the process another name",
        ),
        (
            {"mode": "swarm", **job("* * * * *")},
            "schedules: mode: swarm does not deploy the app's companions yet (processes, accessories and schedules "
            "run in mode: compose only); remove the key or use mode: compose (docs/swarm.md#companions)",
        ),
    ],
)
def test_errors_name_the_key_path(extra: dict[str, Any], message: str) -> None:
    assert error_of(extra) == f"composekit.yaml: {message}"


CONFIG = """\
name: shop
domain: shop.example.com
app:
  module: app.main:app
  volumes: {data: /data}
  secrets: {API_KEY: secrets/api_key}
migrate: {command: python -m app.migrate}
database: {password_file: secrets/db_password}
schedules:
  cleanup: {cron: "*/5 * * * *", command: "python -m app.jobs.cleanup", timeout: 120}
  report: {cron: "0 3 * * 1", command: [python, -m, app.report]}
"""


def project_in(tmp_path: Path, config: str = CONFIG) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "api_key").write_text("k3y-value\n")
    (tmp_path / "secrets" / "db_password").write_text("db-pw-value\n")
    (tmp_path / "composekit.yaml").write_text(config)
    return load_project((tmp_path / "composekit.yaml",))


def test_one_scheduler_of_the_apps_image_confined_without_port_or_front_network(tmp_path: Path) -> None:
    doc = yaml.safe_load(render_stack(project_in(tmp_path)).compose)
    app, scheduler = doc["services"]["app"], doc["services"]["scheduler"]
    for key in ("image", "cap_drop", "read_only", "tmpfs", "security_opt", "logging", "environment"):
        assert scheduler[key] == app[key], key
    assert scheduler.get("user") == app.get("user")
    assert scheduler["volumes"] == [*app["volumes"], "scheduler-state:/var/lib/composekit-scheduler"]
    assert "ports" not in scheduler and "web" not in scheduler["networks"]
    assert scheduler["networks"] == ["db", "processes"]
    assert scheduler["deploy"]["replicas"] == 1
    assert scheduler["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # The app's secrets the app's way (runtime/secret_env.py), then composekit's scheduler with the jobs.
    assert scheduler["command"][:4] == app["command"][:4]
    assert scheduler["labels"]["composekit.secrets-version"] == app["labels"]["composekit.secrets-version"]
    python, script, state, jobs = scheduler["command"][-4:]
    assert (python, script, state) == ("python3", "/etc/composekit/scheduler.py", "/var/lib/composekit-scheduler")
    assert json.loads(jobs) == {
        "cleanup": {"cron": "*/5 * * * *", "argv": ["python", "-m", "app.jobs.cleanup"], "timeout": 120},
        "report": {"cron": "0 3 * * 1", "argv": ["python", "-m", "app.report"], "timeout": 600},
    }
    # A running job finishes before the next scheduler starts: the longest timeout and the scheduler's kill.
    assert scheduler["stop_grace_period"] == "620s"
    assert doc["volumes"]["scheduler-state"] == {}
    files = doc["services"]["files"]
    for name in ("scheduler.py", "cronsim.py"):
        assert {"source": name, "target": f"/etc/composekit/{name}"} in files["configs"]
        assert f"/etc/composekit/{name}" in files["command"]
    assert "class CronSim" in doc["configs"]["cronsim.py"]["content"]
    assert "def main(" in doc["configs"]["scheduler.py"]["content"]


def test_no_scheduler_without_schedules(tmp_path: Path) -> None:
    doc = yaml.safe_load(render_stack(project_in(tmp_path, CONFIG.split("schedules:")[0])).compose)
    assert "scheduler" not in doc["services"] and "scheduler-state" not in doc["volumes"]
    assert "cronsim.py" not in doc["configs"] and not any("scheduler" in a for a in doc["services"]["files"]["command"])


# runtime/scheduler.py on a fake clock.

T0 = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def scheduler(state_dir: Path, clock: Clock, jobs: list[rt.Job]) -> rt.Scheduler:
    return rt.Scheduler(jobs, str(state_dir), now=clock, log=lambda _: None)


def every_minute(name: str, out: Path, timeout: float = 30) -> rt.Job:
    """Appends the time it was scheduled for (the scheduler's COMPOSEKIT_SCHEDULED_AT) to ``out``."""
    write = f"import os; open({str(out)!r}, 'a').write(os.environ['COMPOSEKIT_SCHEDULED_AT'] + '\\n')"
    return rt.Job(name, "* * * * *", [sys.executable, "-c", write], timeout)


def run_due(s: rt.Scheduler, now: datetime) -> list[tuple[str, datetime]]:
    started = [(j.name, t) for j, t in s.due(now)]
    threads = [s.start(j, t) for j, t in s.due(now)]
    for thread in threads:
        thread.join(30)
    return started


def test_a_gap_gives_each_missed_job_one_catch_up_run_and_no_gap_none(tmp_path: Path) -> None:
    out_a = tmp_path / "a.txt"
    jobs = [every_minute("a", out_a), rt.Job("b", "*/5 * * * *", [sys.executable, "-c", "print('b')"], 30)]
    clock = Clock(T0)
    first = scheduler(tmp_path, clock, jobs)
    assert first.due(T0) == []  # a new job starts counting now
    clock.t = T0 + timedelta(seconds=40)  # 12:01:10
    assert run_due(first, clock.t) == [("a", datetime(2026, 12, 3, 12, 1, tzinfo=UTC))]
    assert first.due(clock.t) == []  # never twice for one time
    # The scheduler stops (a redeploy, an outage); a new one starts at 12:13:05: 11 times of a and 2 of b passed.
    clock.t = datetime(2026, 12, 3, 12, 13, 5, tzinfo=UTC)
    second = scheduler(tmp_path, clock, jobs)
    assert run_due(second, clock.t) == [
        ("a", datetime(2026, 12, 3, 12, 13, tzinfo=UTC)),
        ("b", datetime(2026, 12, 3, 12, 10, tzinfo=UTC)),
    ]
    assert out_a.read_text() == "2026-12-03T12:01:00+00:00\n2026-12-03T12:13:00+00:00\n"
    # A third scheduler right after, within the same minute: nothing was missed, nothing runs.
    third = scheduler(tmp_path, clock, jobs)
    assert third.due(clock.t + timedelta(seconds=50)) == []
    state = json.loads((tmp_path / "state.json").read_text())
    run = state["jobs"]["b"]["last_run"]
    assert run["scheduled"] == "2026-12-03T12:10:00+00:00" and run["exit_code"] == 0 and run["output"] == ["b"]
    assert run["timed_out"] is False and run["ended"] is not None
    assert state["jobs"]["a"]["next"] == "2026-12-03T12:14:00+00:00"
    assert state["jobs"]["b"]["next"] == "2026-12-03T12:15:00+00:00"


def test_a_run_the_scheduler_did_not_see_end_is_recorded_as_interrupted_not_rerun(tmp_path: Path) -> None:
    clock = Clock(T0)
    jobs = [every_minute("a", tmp_path / "a.txt")]
    first = scheduler(tmp_path, clock, jobs)
    clock.t = T0 + timedelta(seconds=40)
    with first.lock:  # what start() records before the command runs, then the scheduler is killed
        entry = first.state["jobs"]["a"]
        entry["last_scheduled"] = "2026-12-03T12:01:00+00:00"
        entry["last_run"] = {"scheduled": "2026-12-03T12:01:00+00:00", "started": "x", "ended": None}
        first._write()
    second = scheduler(tmp_path, clock, jobs)
    assert second.due(clock.t) == []
    assert second.state["jobs"]["a"]["last_run"]["interrupted"] is True


def test_a_second_scheduler_waits_for_the_lock(tmp_path: Path) -> None:
    held = rt.acquire_lock(str(tmp_path), log=lambda _: None)
    assert held is not None
    assert rt.acquire_lock(str(tmp_path), log=lambda _: None, wait=False) is None
    held.close()
    again = rt.acquire_lock(str(tmp_path), log=lambda _: None, wait=False)
    assert again is not None
    again.close()


def test_a_second_scheduler_process_runs_nothing_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    held = rt.acquire_lock(str(tmp_path), log=lambda _: None)
    assert held is not None
    jobs = json.dumps({"a": {"cron": "* * * * *", "argv": ["true"], "timeout": 5}})
    proc = subprocess.Popen(
        [sys.executable, rt.__file__, str(tmp_path), jobs], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("scheduler: another scheduler holds the lock; waiting")
    assert not (tmp_path / "state.json").exists()
    held.close()
    assert proc.stdout.readline().startswith("scheduler: 1 job(s): a (* * * * *)")
    proc.terminate()
    assert proc.wait(10) == 0


def test_a_run_past_its_timeout_is_killed_and_recorded(tmp_path: Path) -> None:
    clock = Clock(T0)
    slow = rt.Job(
        "slow", "* * * * *", [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"], 0.5
    )
    lines: list[str] = []
    s = rt.Scheduler([slow], str(tmp_path), now=clock, log=lines.append)
    clock.t = T0 + timedelta(seconds=40)
    thread = s.start(slow, datetime(2026, 12, 3, 12, 1, tzinfo=UTC))
    assert s.due(clock.t + timedelta(minutes=1)) == []  # never two runs of one job at once
    thread.join(20)
    assert not thread.is_alive()
    run = json.loads((tmp_path / "state.json").read_text())["jobs"]["slow"]["last_run"]
    assert run["timed_out"] is True and run["exit_code"] == -15 and run["output"] == ["working"]
    assert "slow | working" in lines and "slow | timed out after 0.5 s: stopping it" in lines
    assert s.due(clock.t + timedelta(minutes=1)) != []  # the deferred time runs once the job has ended


# The engine's side: the stop-first replacement and status's rows, on a fake engine.


class FakeDocker:
    """The scheduler's containers: ``image`` is the running one's; up() starts one of the new image."""

    def __init__(self, image: str | None) -> None:
        self.calls: list[str] = []
        self.items = [] if image is None else [self._info("shop-scheduler-1", image)]

    def _info(self, name: str, image: str) -> ContainerInfo:
        return ContainerInfo(name, name, "scheduler", "running", None, None, 0, None, None, 0, image)

    def image_id(self, image: str) -> str:
        return "sha256:new"

    def config_hash(self, service: str) -> str:
        return "hash"

    def container_labels(self, name: str) -> dict[str, str]:
        return {"com.docker.compose.config-hash": "hash"}

    def containers(self) -> list[ContainerInfo]:
        return list(self.items)

    def remove_now(self, name: str) -> None:
        self.calls.append(f"remove_now {name}")

    def stop_and_remove(self, name: str) -> None:
        assert not any(c.image == "sha256:new" for c in self.items), "a new scheduler runs beside the old one"
        self.calls.append(f"stop_and_remove {name}")
        self.items = [c for c in self.items if c.name != name]

    def up(self, services: list[str], dependencies: bool = True, on_line: Any = None) -> None:
        self.calls.append(f"up {' '.join(services)} dependencies={dependencies}")
        self.items.append(self._info("shop-scheduler-2", "sha256:new"))


def test_a_deploy_stops_the_old_scheduler_before_the_new_one_starts(tmp_path: Path) -> None:
    docker = FakeDocker("sha256:old")
    assert deploy_scheduler(project_in(tmp_path), docker, "r2")  # type: ignore[arg-type]
    assert docker.calls == ["stop_and_remove shop-scheduler-1", "up scheduler dependencies=False"]


def test_a_scheduler_already_on_the_release_is_left_running(tmp_path: Path) -> None:
    docker = FakeDocker("sha256:new")
    assert not deploy_scheduler(project_in(tmp_path), docker, "r2")  # type: ignore[arg-type]
    assert docker.calls == []


def test_status_rows_show_the_last_run_its_result_and_the_next_time(tmp_path: Path) -> None:
    config = project_in(tmp_path).config
    state = {
        "jobs": {
            "cleanup": {
                "last_scheduled": "2026-12-03T12:10:00+00:00",
                "next": "2026-12-03T12:15:00+00:00",
                "last_run": {
                    "scheduled": "2026-12-03T12:10:00+00:00",
                    "started": "2026-12-03T12:10:00+00:00",
                    "ended": "2026-12-03T12:12:00+00:00",
                    "exit_code": -15,
                    "timed_out": True,
                    "output": ["deleted 3", "working"],
                },
            }
        }
    }
    cleanup, report = schedule_rows(config, json.dumps(state))
    assert (cleanup.name, cleanup.cron, cleanup.result) == ("cleanup", "*/5 * * * *", "exit -15 (timed out)")
    assert cleanup.output == ["deleted 3", "working"] and cleanup.next == "2026-12-03T12:15:00+00:00"
    assert (report.result, report.note) == ("-", "not started by the running scheduler yet")
    down = schedule_rows(config, None, "the scheduler is not running (`composekit up` starts it)")
    assert [r.note for r in down] == ["the scheduler is not running (`composekit up` starts it)"] * 2


def test_the_status_table_shows_the_result_and_the_output_as_written() -> None:
    row = ScheduleStatus(
        "tick", "* * * * *", "2026-12-03T12:10:00+00:00", "x", "2026-12-03T12:10:40+00:00", -15, True,
        output=["kept [old] rows"], next="2026-12-03T12:11:00+00:00",
    )  # fmt: skip
    console = Console(width=120, record=True)
    console.print(schedules_table(StackStatus("shop", "u", [], "", [row])))
    text = console.export_text()
    assert "12-03 12:10" in text and "exit -15 (timed out)" in text and "12-03 12:11" in text
    assert "kept [old] rows" in text  # rich markup in a job's output is shown, not interpreted
