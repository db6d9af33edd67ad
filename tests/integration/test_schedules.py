"""schedules/ for real: tests/integration/apps/schedule-app has a job every minute that appends the minute it was
scheduled for (COMPOSEKIT_SCHEDULED_AT) and the release's version to a file in an app volume. One deployment shared
by the module, in order: the job runs, `status` shows its last run with exit code 0 and `logs scheduler` its output;
a redeploy with a code change that spans a minute boundary replaces the scheduler (stop-first) on the new image and
every minute is in the file exactly once (no duplicate, no gap); a scheduler stopped across a minute boundary is
caught up once, for that minute, by the next `up`."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

APP = REPO / "tests" / "integration" / "apps" / "schedule-app"


def _scheduler(stack: Stack) -> Any:
    label = f"com.docker.compose.project={stack.name}"
    found = stack.docker.container.list(filters=[("label", label), ("label", "com.docker.compose.service=scheduler")])
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def _ticks(stack: Stack) -> list[tuple[datetime, str]]:
    response = stack.https("/ticks")
    assert response.status_code == 200, response.text
    out = []
    for line in response.json():
        when, version = line.split()
        out.append((datetime.fromisoformat(when), version))
    return out


def _wait_ticks(stack: Stack, done: Any, timeout: float = 90) -> list[tuple[datetime, str]]:
    deadline = time.monotonic() + timeout
    seen = _ticks(stack)
    while not done(seen) and time.monotonic() < deadline:
        time.sleep(2)
        seen = _ticks(stack)
    assert done(seen), f"after {timeout:g}s the ticks file holds {seen}"
    return seen


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _wait_second(low: int, high: int) -> None:
    """Until the wall clock's second is in [low, high] (bounded: at most a minute)."""
    deadline = time.monotonic() + 65
    while not low <= datetime.now(UTC).second <= high and time.monotonic() < deadline:
        time.sleep(0.5)


def _every_minute_once(ticks: list[tuple[datetime, str]]) -> None:
    times = [t for t, _ in ticks]
    assert len(times) == len(set(times)), f"a minute ran twice: {times}"
    assert times == sorted(times), times
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a != timedelta(minutes=1)]
    assert not gaps, f"minutes missing between {gaps}"


@pytest.fixture(scope="module")
def deployed(make_stack: Any) -> Stack:
    stack: Stack = make_stack(APP, "ck-schedules")
    stack.ck("up", timeout=600)
    return stack


def test_the_job_runs_and_status_and_logs_show_its_last_run(deployed: Stack) -> None:
    ticks = _wait_ticks(deployed, lambda seen: len(seen) >= 1)
    last, version = ticks[-1]
    assert version == "v1"
    rows = json.loads(deployed.ck("status", "--json").stdout)["schedules"]
    assert [r["name"] for r in rows] == ["tick"]
    row = rows[0]
    assert row["exit_code"] == 0 and row["timed_out"] is False and row["ended"] is not None, row
    assert datetime.fromisoformat(row["scheduled"]) >= last, (row, ticks)
    assert row["next"] is not None and datetime.fromisoformat(row["next"]) > datetime.fromisoformat(row["scheduled"])
    table = deployed.ck("status").stdout
    assert "tick" in table and "exit 0" in table, table
    logs = deployed.ck("logs", "scheduler").stdout
    assert f"tick | tick {last.isoformat()} v1" in logs and "tick | exited 0" in logs, logs[-2000:]
    scheduler = _scheduler(deployed)
    host = scheduler.host_config
    assert host.readonly_rootfs and host.cap_drop == ["ALL"] and scheduler.config.user not in ("", "0", "root")
    assert f"{deployed.name}_web" not in set(scheduler.network_settings.networks)


def test_a_redeploy_across_a_minute_boundary_neither_doubles_nor_skips_a_minute(deployed: Stack) -> None:
    old = _scheduler(deployed)
    before_id, before_image = old.id, old.image  # read now: python-on-whales inspects again on access
    (deployed.dir / "app" / "version.py").write_text('VERSION = "v2"\n')
    _wait_second(53, 55)  # a code-change redeploy (about 8 s here) takes longer than the rest of this minute
    started = datetime.now(UTC)
    deployed.ck("up", timeout=300)
    ended = datetime.now(UTC)
    assert _minute(ended) > _minute(started), f"the redeploy ({started} to {ended}) spanned no minute boundary"
    after = _scheduler(deployed)
    assert after.id != before_id and after.image != before_image  # replaced, on the new release's image
    assert before_id not in {c.id for c in deployed.docker.container.list(all=True)}  # the old one is gone
    ticks = _wait_ticks(deployed, lambda seen: any(v == "v2" and t > _minute(ended) for t, v in seen))
    _every_minute_once(ticks)
    boundary = [t for t, _ in ticks if _minute(started) < t <= _minute(ended)]
    assert boundary, f"no run for the minutes the redeploy spanned: {ticks}"


def test_a_scheduler_stopped_across_a_minute_is_caught_up_once_by_the_next_up(deployed: Stack) -> None:
    _wait_second(45, 50)
    stopped_at = datetime.now(UTC)
    deployed.docker.container.stop(_scheduler(deployed).name)
    missed = _minute(stopped_at) + timedelta(minutes=1)
    while datetime.now(UTC) < missed + timedelta(seconds=3):
        time.sleep(0.5)
    up = deployed.ck("up", timeout=300)
    assert "starting the scheduler" in up.stderr, up.stderr[-2000:]
    ticks = _wait_ticks(deployed, lambda seen: any(t >= missed for t, _ in seen), timeout=30)
    _every_minute_once(ticks)
    assert missed in [t for t, _ in ticks]
