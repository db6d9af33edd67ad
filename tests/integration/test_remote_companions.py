"""Companions on a remote engine, for real: tests/integration/apps/worker-app (an RQ worker process, a Redis accessory
whose password comes from a secret file) plus a schedule that enqueues a job every minute and an app/env_file, all
deployed with `host: ssh://composekit-test` (the test environment's sshd in front of this machine's engine, as in
test_remote.py). One deployment shared by the module, in order: `up` works over SSH; the worker runs a job enqueued
through Traefik and the job the schedule enqueued; `status` lists the process, the accessory and the schedule's last
run; `logs worker` and `logs scheduler` show their output; a second `up` with nothing changed keeps every container
(the env_file too); a changed env file replaces the app, the worker and the scheduler, never Redis; a change to Redis's
own config recreates Redis only; an app that fails its switch leaves the worker and the scheduler on the serving
release's image."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from .conftest import REPO, Stack
from .sshd import ALIAS, ssh_config  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

APP = REPO / "tests" / "integration" / "apps" / "worker-app"

# A schedule's command: enqueue a job named after the time it stands for, with the app's environment and secrets.
SCHEDULED = '''"""Run by the scheduler every minute: enqueues one job for the worker."""

import os

from rq import Queue

from .conn import redis

# RQ's job ids are letters, digits, "_" and "-": 2026-12-03T14:42:00+00:00 -> 2026-12-03T14-42-00-00-00
job = "sched-" + "".join(c if c.isalnum() else "-" for c in os.environ["COMPOSEKIT_SCHEDULED_AT"])
Queue("default", connection=redis()).enqueue("app.jobs.record", job, job_id=f"job-{job}")
print(f"enqueued {job} (GREETING={os.environ['GREETING']})", flush=True)
'''


@pytest.fixture(scope="module")
def remote(ssh_config: Any, make_stack: Any, testenv: Any) -> Stack:  # noqa: F811
    # ssh_config first: set up before make_stack, so torn down after it (make_stack's `down` goes over SSH too).
    stack: Stack = make_stack(
        APP,
        "remote-comp",
        host=ALIAS,
        images={"redis": testenv.redis_image},
        app={"env_file": "app.env"},
        schedules={"enqueue": {"cron": "* * * * *", "command": "python3 -m app.scheduled", "timeout": 30}},
    )
    (stack.dir / "secrets").mkdir()
    (stack.dir / "secrets" / "redis_password").write_text(f"rp-{secrets.token_urlsafe(18)}:@/%\n")
    (stack.dir / "app.env").write_text("GREETING=hello\n")
    (stack.dir / "app" / "scheduled.py").write_text(SCHEDULED)
    result = stack.ck("up", "--no-smoke", timeout=900)
    assert f"engine: {ALIAS} (from composekit.yaml + local.yaml: host), through one SSH connection" in result.stderr
    return stack


def _done(stack: Stack) -> dict[str, Any]:
    response = stack.https("/done")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _wait_done(stack: Stack, until: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = _done(stack)
    while not until(seen) and time.monotonic() < deadline:
        time.sleep(1)
        seen = _done(stack)
    if not until(seen):
        scheduler = stack.ck("logs", "scheduler", check=False)
        schedules = stack.ck("status", "--json", check=False).stdout
        raise AssertionError(
            f"after {timeout:g}s: {seen}\nstatus: {schedules[-3000:]}\nlogs scheduler: {scheduler.stdout[-3000:]}"
            f"{scheduler.stderr[-2000:]}"
        )
    return seen


def _ids(stack: Stack) -> dict[str, str]:
    label = f"com.docker.compose.project={stack.name}"
    return {
        (c.config.labels or {})["com.docker.compose.service"]: c.id
        for c in stack.docker.container.list(filters=[("label", label)])
    }


def test_the_worker_runs_a_job_and_the_one_the_schedule_enqueued(remote: Stack) -> None:
    assert remote.wait_https("/health").status_code == 200
    assert remote.https("/enqueue/over-ssh", method="POST").status_code == 200
    # The schedule runs every minute: its first job comes within about a minute of the scheduler's start.
    seen = _wait_done(
        remote, lambda s: "over-ssh" in s["done"] and any(j.startswith("sched-") for j in s["done"]), timeout=150
    )
    assert seen["runs"]["over-ssh"] == 1, seen


def test_status_lists_the_process_the_accessory_and_the_schedule(remote: Stack) -> None:
    data = json.loads(remote.ck("status", "--json").stdout)
    assert data["engine"].startswith(f"{ALIAS} (from composekit.yaml + local.yaml: host), through one SSH connection")
    states = {row["service"]: (row["status"], row["health"]) for row in data["services"]}
    assert states["worker"] == ("running", "healthy") and states["redis"] == ("running", "healthy"), states
    assert states["scheduler"][0] == "running", states
    rows = {row["name"]: row for row in data["schedules"]}
    assert set(rows) == {"enqueue"}
    assert rows["enqueue"]["exit_code"] == 0 and rows["enqueue"]["ended"] is not None, rows
    table = remote.ck("status").stdout
    assert "worker" in table and "enqueue" in table and "exit 0" in table, table


def test_logs_of_the_worker_and_the_scheduler(remote: Stack) -> None:
    worker = remote.ck("logs", "worker").stdout
    assert "worker of v1 starting" in worker and "recorded job over-ssh on v1" in worker, worker[-2000:]
    scheduler = remote.ck("logs", "scheduler").stdout
    assert "enqueue | enqueued sched-" in scheduler and "(GREETING=hello)" in scheduler, scheduler[-2000:]
    assert "enqueue | exited 0" in scheduler, scheduler[-2000:]


def test_a_second_up_with_nothing_changed_keeps_every_container(remote: Stack) -> None:
    before = _ids(remote)
    assert {"app", "worker", "scheduler", "redis", "traefik"} <= set(before), before
    result = remote.ck("up", "--no-smoke")
    assert _ids(remote) == before, result.stderr[-3000:]
    assert "process worker already runs this release" in result.stderr, result.stderr[-3000:]
    assert "the scheduler already runs release" in result.stderr, result.stderr[-3000:]
    assert "the app already runs this image and config" in result.stderr, result.stderr[-3000:]


def test_a_changed_env_file_replaces_the_app_the_worker_and_the_scheduler_not_redis(remote: Stack) -> None:
    before = _ids(remote)
    (remote.dir / "app.env").write_text("GREETING=bonjour\n")
    remote.ck("up", "--no-smoke")
    after = _ids(remote)
    for service in ("app", "worker", "scheduler"):
        assert after[service] != before[service], service
    assert after["redis"] == before["redis"] and after["traefik"] == before["traefik"]
    # The new scheduler's jobs get the file's new value.
    deadline = time.monotonic() + 150
    logs = ""
    while "(GREETING=bonjour)" not in logs and time.monotonic() < deadline:
        time.sleep(3)
        logs = remote.ck("logs", "scheduler").stdout
    assert "(GREETING=bonjour)" in logs, logs[-2000:]


def test_a_change_to_the_accessorys_own_config_recreates_it_only(remote: Stack) -> None:
    """The change sits in a config file outside the app's directory: a file inside it is part of the build context,
    so editing one there builds a new image and makes a new release of the app, the worker and the scheduler too."""
    before = _ids(remote)
    change = remote.dir.parent / "redis-change.yaml"
    change.write_text("accessories:\n  redis:\n    environment: {REDIS_EXTRA: '1'}\n")
    remote.ck("up", "--no-smoke", extra_config=(str(change),))
    after = _ids(remote)
    assert after["redis"] != before["redis"]
    assert {s: after[s] for s in after if s != "redis"} == {s: before[s] for s in before if s != "redis"}
    # The worker (restarted by Docker if it lost Redis, never replaced) still runs jobs on the new Redis.
    assert remote.https("/enqueue/after-redis-change", method="POST").status_code == 200
    _wait_done(remote, lambda s: "after-redis-change" in s["done"], timeout=90)


def _image(stack: Stack, service: str) -> str:
    label = f"com.docker.compose.project={stack.name}"
    found = stack.docker.container.list(filters=[("label", label), ("label", f"com.docker.compose.service={service}")])
    assert len(found) == 1, [c.name for c in found]
    return str(found[0].image)


def test_a_failed_app_switch_puts_the_worker_and_the_scheduler_back_on_the_serving_release(remote: Stack) -> None:
    """The new release's worker and scheduler start fine (they never import app.main), its app crashes at start: the
    switch fails, the old app keeps serving, and the worker and scheduler run the old app's image again."""
    serving = _image(remote, "app")
    main = remote.dir / "app" / "main.py"
    good = main.read_text()
    (remote.dir / "app" / "version.py").write_text('VERSION = "v2"\n')
    main.write_text(good + '\nraise SystemExit("this release cannot start")\n')
    try:
        result = remote.ck("up", "--no-smoke", "--timeout", "240", check=False)
    finally:
        main.write_text(good)
        (remote.dir / "app" / "version.py").write_text('VERSION = "v1"\n')
    assert result.returncode == 1, result.stderr[-3000:]
    assert "starting process worker of release" in result.stderr, result.stderr[-3000:]  # they did move
    assert "putting the processes and the scheduler back on release" in result.stderr, result.stderr[-3000:]
    assert _image(remote, "app") == serving
    assert _image(remote, "worker") == serving and _image(remote, "scheduler") == serving
    assert remote.https("/version").json() == {"version": "v1"}
    assert remote.https("/enqueue/after-failed-switch", method="POST").status_code == 200
    _wait_done(remote, lambda s: "after-failed-switch" in s["done"], timeout=90)
