"""Zero-downtime redeploys on the real engine, Traefik and Pebble: one stack shared by the module's tests, in order.

A code change redeployed under constant HTTPS load loses no request and the answer changes to the new version;
a failing migration and a release that never turns healthy leave the old release serving (same container);
a second `up` with nothing changed recreates nothing; a concurrent second deploy is refused by the lock;
releases are listed and pruned to releases/keep; a rollback under load loses no request.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import REPO, Stack
from .restart_load import HttpsLoad

pytestmark = pytest.mark.integration

APP = REPO / "tests" / "integration" / "apps" / "redeploy-app"
NAME = "zd-redeploy"


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Stack:
    s: Stack = make_stack(APP, NAME, releases={"keep": 2})
    for image in s.docker.image.list(f"{NAME}-app"):  # release tags of earlier runs (test images, this project's)
        for tag in image.repo_tags:
            s.docker.image.remove(tag)
    s.ck("up", "--no-smoke", timeout=600)
    s.wait_https("/")
    return s


def set_version(stack: Stack, version: str) -> None:
    main = stack.dir / "app" / "main.py"
    text = main.read_text()
    start = text.index('VERSION = "')
    end = text.index('"', start + len('VERSION = "'))
    main.write_text(text[:start] + f'VERSION = "{version}' + text[end:])


def app_ids(stack: Stack) -> list[str]:
    found = stack.docker.container.list(
        all=True,
        filters=[("label", f"com.docker.compose.project={stack.name}"), ("label", "com.docker.compose.service=app")],
    )
    return sorted(c.id for c in found)


def marker(stack: Stack, name: str) -> Path:
    return stack.dir / "app" / name


def test_redeploy_under_load_loses_no_request_and_serves_the_new_version(stack: Stack) -> None:
    assert stack.https("/").json() == {"version": "v1"}
    old = app_ids(stack)
    set_version(stack, "v2")
    with HttpsLoad(stack.domain, stack.env.roots, port=stack.env.lane.https_port, threads=3, max_seconds=240) as load:
        done = stack.ck("up", "--no-smoke", timeout=300)
        result = load.stop()
    assert result.sent > 100, result
    assert result.failed == 0, f"{result}\n{done.stderr[-3000:]}"
    assert stack.https("/").json() == {"version": "v2"}
    new = app_ids(stack)
    assert len(new) == 1 and new != old
    assert "switch took" in done.stderr


def test_a_second_up_with_nothing_changed_recreates_nothing(stack: Stack) -> None:
    before = {service: c.id for service, c in stack.containers().items() if service != "migrate"}
    done = stack.ck("up", "--no-smoke", timeout=300)
    after = {service: c.id for service, c in stack.containers().items() if service != "migrate"}
    assert after == before
    assert "nothing recreated" in done.stderr


def test_a_failing_migration_leaves_the_old_release_serving(stack: Stack) -> None:
    old = app_ids(stack)
    set_version(stack, "v3")
    marker(stack, "FAIL_MIGRATION").write_text("")
    try:
        with HttpsLoad(
            stack.domain, stack.env.roots, port=stack.env.lane.https_port, threads=2, max_seconds=240
        ) as load:
            done = stack.ck("up", "--no-smoke", check=False, timeout=300)
            result = load.stop()
    finally:
        marker(stack, "FAIL_MIGRATION").unlink()
    assert done.returncode == 1
    assert "the migration failed (exit code 3)" in done.stderr
    assert "migration failed on purpose" in done.stderr
    assert result.failed == 0, result
    assert app_ids(stack) == old
    assert stack.https("/").json() == {"version": "v2"}


def test_a_release_that_never_turns_healthy_is_removed_and_the_old_one_keeps_serving(stack: Stack) -> None:
    old = app_ids(stack)
    set_version(stack, "v4")
    marker(stack, "BROKEN_HEALTH").write_text("")
    try:
        with HttpsLoad(
            stack.domain, stack.env.roots, port=stack.env.lane.https_port, threads=2, max_seconds=240
        ) as load:
            done = stack.ck("up", "--no-smoke", "--timeout", "120", check=False, timeout=300)
            result = load.stop()
    finally:
        marker(stack, "BROKEN_HEALTH").unlink()
    assert done.returncode == 1, done.stderr[-2000:]
    assert "was removed: it failed (last seen: running, health unhealthy" in done.stderr
    assert "is untouched and still serving" in done.stderr
    assert "Last log lines of zd-redeploy-app-" in done.stderr
    assert result.failed == 0, result
    assert app_ids(stack) == old
    assert stack.https("/").json() == {"version": "v2"}


def test_a_concurrent_second_deploy_is_refused_by_the_lock(stack: Stack) -> None:
    lock = f"{NAME}-deploy-lock"
    configs = [arg for f in ("composekit.yaml", "local.yaml") for arg in ("-c", f)]
    first = subprocess.Popen(
        [sys.executable, "-m", "composekit.cli", *configs, "up", "--no-smoke"],
        cwd=stack.dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until = time.monotonic() + 60
        while not stack.docker.container.exists(lock):
            assert time.monotonic() < until and first.poll() is None, "the first deploy never took the lock"
            time.sleep(0.1)
        second = stack.ck("up", "--no-smoke", check=False, timeout=120)
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 1
    assert f"another deploy of {NAME} holds the deploy lock (container {lock}) since " in second.stderr
    assert "run again with --break-lock" in second.stderr
    assert not stack.docker.container.exists(lock)  # released when the first deploy ended


def test_a_stale_lock_is_broken_only_when_asked(stack: Stack) -> None:
    lock = f"{NAME}-deploy-lock"
    stack.docker.container.create(
        stack.env.python_image,
        ["true"],
        name=lock,
        networks=["none"],
        labels={"composekit.lock.holder": "ci@gone pid 1 (up)", "composekit.lock.since": "2026-01-01T00:00:00Z"},
    )
    refused = stack.ck("up", "--no-smoke", check=False, timeout=120)
    assert refused.returncode == 1
    assert "since 2026-01-01T00:00:00Z: ci@gone pid 1 (up)" in refused.stderr
    done = stack.ck("up", "--no-smoke", "--break-lock", timeout=300)
    assert "breaking the deploy lock held by ci@gone pid 1 (up) since 2026-01-01T00:00:00Z" in done.stderr
    assert not stack.docker.container.exists(lock)


def test_releases_are_listed_and_pruned_to_keep(stack: Stack) -> None:
    # Recorded so far: v1 (first up), v2, v4 (the lock test's deploy); releases/keep is 2.
    rows = json.loads(stack.ck("releases", "--json").stdout)
    assert len(rows) == 2 and [r["current"] for r in rows] == [False, True]
    tags = [t for i in stack.docker.image.list(f"{NAME}-app") for t in i.repo_tags if not t.endswith(":latest")]
    assert sorted(tags) == sorted(r["tag"] for r in rows)
    assert stack.https("/").json() == {"version": "v4"}


def test_rollback_under_load_restores_the_previous_release_with_no_failed_request(stack: Stack) -> None:
    previous = json.loads(stack.ck("releases", "--json").stdout)[0]
    with HttpsLoad(stack.domain, stack.env.roots, port=stack.env.lane.https_port, threads=3, max_seconds=240) as load:
        done = stack.ck("rollback", timeout=300)
        result = load.stop()
    assert result.sent > 50, result
    assert result.failed == 0, f"{result}\n{done.stderr[-3000:]}"
    assert f"rolling back to release {previous['id']} (no build, no migration)" in done.stderr
    assert stack.https("/").json() == {"version": "v2"}
    rows = json.loads(stack.ck("releases", "--json").stdout)
    assert [r["current"] for r in rows] == [True, False]


def test_the_self_check_catches_a_release_failing_after_its_health_check_and_switches_back(stack: Stack) -> None:
    old = app_ids(stack)
    set_version(stack, "v5")
    marker(stack, "BROKEN_AFTER_HEALTH").write_text("")
    try:
        done = stack.ck("up", "--no-smoke", "--rollback-on-error", check=False, timeout=300)
    finally:
        marker(stack, "BROKEN_AFTER_HEALTH").unlink()
    assert done.returncode == 1, done.stderr[-2000:]
    assert "the self-check failed: " in done.stderr and "(first: HTTP 500" in done.stderr
    assert "because of --rollback-on-error" in done.stderr
    assert app_ids(stack) != old  # a new container of the previous image: switched back, not kept
    assert stack.https("/").json() == {"version": "v2"}


def test_a_good_switch_reports_no_failed_probe(stack: Stack) -> None:
    set_version(stack, "v6")
    done = stack.ck("up", "--no-smoke", timeout=300)
    assert re.search(r"self-check: \d+ probes through Traefik during the switch, 0 failed, slowest \d+ ms", done.stderr)
    assert stack.https("/").json() == {"version": "v6"}


def test_a_long_response_on_the_old_release_finishes_during_the_switch(stack: Stack) -> None:
    before = stack.https("/").json()["version"]
    lines: list[str] = []

    def stream() -> None:
        verify = ssl.create_default_context(cafile=str(stack.env.roots))
        with (
            httpx.Client(verify=verify, timeout=30) as client,
            client.stream(
                "GET",
                f"{stack.base_url}/slow?seconds=20",
                headers={"Host": stack.domain},
                extensions={"sni_hostname": stack.domain},
            ) as response,
        ):
            lines.extend(response.iter_lines())

    reader = threading.Thread(target=stream)
    reader.start()
    time.sleep(1)
    set_version(stack, "v7")
    stack.ck("up", "--no-smoke", timeout=300)
    reader.join(timeout=60)
    # All 20 lines came from the old release, although it left rotation and was stopped meanwhile.
    assert lines == [f"{before} {i}" for i in range(20)]
    assert stack.https("/").json() == {"version": "v7"}
