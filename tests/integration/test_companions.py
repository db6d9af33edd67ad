"""The app's companions for real (processes, accessories): tests/integration/apps/worker-app enqueues RQ jobs in a
Redis accessory (kind: redis, the local composekit-test/redis:7 built from Debian's redis-server) and a worker process
of the app's image runs them. One deployment shared by the module, in order: it works (`status`, `logs worker`), the
password is nowhere in `docker inspect` or the rendered files, a redeploy with a code change replaces the worker on
the new image after the migration while jobs are enqueued (0 lost, duplicates counted) and leaves Redis's container
alone, a worker whose health_command fails fails the deploy with the old release still serving and working, and
`composekit rollback` puts the worker back on the older release's image.
Last, the fastapi-worker template (`init --template fastapi-worker`) comes up and its worker runs a job."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

APP = REPO / "tests" / "integration" / "apps" / "worker-app"


def _running(stack: Stack, service: str) -> list[Any]:
    label = f"com.docker.compose.project={stack.name}"
    found = stack.docker.container.list(filters=[("label", label), ("label", f"com.docker.compose.service={service}")])
    return sorted(found, key=lambda c: c.name)


def _done(stack: Stack) -> dict[str, Any]:
    response = stack.https("/done")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _wait_done(stack: Stack, ids: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = _done(stack)
    while not ids <= set(seen["done"]) and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _done(stack)
    return seen


def _set_version(stack: Stack, version: str) -> None:
    (stack.dir / "app" / "version.py").write_text(f'VERSION = "{version}"\n')


@pytest.fixture(scope="module")
def deployed(make_stack: Any, testenv: Any) -> Stack:
    stack: Stack = make_stack(APP, "ck-companions", images={"redis": testenv.redis_image})
    (stack.dir / "secrets").mkdir()
    # Characters a URL or a shell would read specially, so a leak in any form is caught.
    password = f"rp-{secrets.token_urlsafe(18)}:@/%"
    (stack.dir / "secrets" / "redis_password").write_text(password + "\n")
    stack.ck("up", timeout=600)
    return stack


def test_the_worker_runs_jobs_and_status_and_logs_show_it(deployed: Stack) -> None:
    ids = {f"first-{i}" for i in range(5)}
    for job in sorted(ids):
        assert deployed.https(f"/enqueue/{job}", method="POST").status_code == 200
    seen = _wait_done(deployed, ids)
    assert ids <= set(seen["done"]), seen
    assert seen["by_version"].get("v1", 0) >= 5

    rows = json.loads(deployed.ck("status", "--json").stdout)["services"]
    states = {row["service"]: (row["status"], row["health"]) for row in rows}
    assert states["worker"] == ("running", "healthy") and states["redis"] == ("running", "healthy"), states

    logs = deployed.ck("logs", "worker").stdout
    assert "worker of v1 starting" in logs and "recorded job first-0 on v1" in logs, logs[-2000:]


def test_processes_and_accessories_are_confined_and_leak_no_password(deployed: Stack) -> None:
    password = (deployed.dir / "secrets" / "redis_password").read_text().rstrip("\n")
    for c in deployed.docker.container.list(
        all=True, filters=[("label", f"com.docker.compose.project={deployed.name}")]
    ):
        raw = json.dumps(
            [c.config.env, c.config.cmd, c.config.labels, c.config.entrypoint, c.config.healthcheck], default=str
        )
        assert password not in raw, f"the Redis password is in docker inspect of {c.name}"
    for path in (deployed.dir / ".composekit").rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), f"the Redis password is in {path}"

    worker = _running(deployed, "worker")[0]
    host = worker.host_config
    assert host.readonly_rootfs and host.cap_drop == ["ALL"] and "no-new-privileges:true" in host.security_opt
    assert worker.config.user not in ("", "0", "root")
    assert host.log_config.config.get("max-size") == "10m"
    assert all(bound is None for bound in (worker.network_settings.ports or {}).values())  # EXPOSEd, not published
    networks = set(worker.network_settings.networks)
    assert f"{deployed.name}_web" not in networks and f"{deployed.name}_accessories" in networks, networks
    redis = _running(deployed, "redis")[0]
    assert set(redis.network_settings.networks) == {f"{deployed.name}_accessories"}
    assert all(bound is None for bound in (redis.network_settings.ports or {}).values())
    # The Redis container knows no password: it holds its SHA-256 in the ACL secret, and refuses a client without it.
    refused = deployed.docker.container.execute(redis.name, ["sh", "-c", "redis-cli ping 2>&1 || true"])
    assert "NOAUTH" in str(refused)


def test_a_redeploy_replaces_the_worker_after_the_migration_loses_no_job_and_keeps_redis(deployed: Stack) -> None:
    redis_before = _running(deployed, "redis")[0]
    workers_before = {c.id for c in _running(deployed, "worker")}
    _set_version(deployed, "v2")

    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def enqueue() -> None:
        n = 0
        while not stop.is_set():
            job = f"during-{n}"
            n += 1
            try:
                ok = deployed.https(f"/enqueue/{job}", method="POST").status_code == 200
            except httpx.HTTPError as exc:
                ok = False
                failed.append(f"{job}: {exc!r}")
            if ok:
                acked.append(job)
            time.sleep(0.05)

    sender = threading.Thread(target=enqueue, daemon=True)
    sender.start()
    try:
        started = time.monotonic()
        deployed.ck("up", timeout=600)
        time.sleep(2)  # a few jobs enqueued on the new release too
    finally:
        stop.set()
        sender.join(timeout=30)
    assert time.monotonic() - started < 600

    seen = _wait_done(deployed, set(acked), timeout=90)
    lost = sorted(set(acked) - set(seen["done"]))
    duplicates = {job: runs for job, runs in seen["runs"].items() if job in set(acked) and runs > 1}
    print(
        f"jobs enqueued during the redeploy: {len(acked)} acknowledged, {len(failed)} requests failed, "
        f"{len(lost)} lost, {len(duplicates)} run more than once"
    )
    assert len(acked) >= 20, (acked, failed[:3])
    assert lost == [], f"{len(lost)} acknowledged jobs never ran: {lost[:10]}"
    assert duplicates == {}, duplicates

    redis_after = _running(deployed, "redis")[0]
    assert (redis_after.id, redis_after.state.started_at) == (redis_before.id, redis_before.state.started_at)

    workers = _running(deployed, "worker")
    app = _running(deployed, "app")[0]
    assert len(workers) == 1 and workers[0].id not in workers_before
    assert workers[0].image == app.image  # the new release's image
    migrate = deployed.containers()["migrate"]
    assert migrate.state.exit_code == 0 and migrate.state.finished_at <= workers[0].state.started_at
    assert deployed.https("/version").json() == {"version": "v2"}
    assert "v2" in seen["by_version"], seen["by_version"]


def test_a_worker_that_fails_its_health_fails_the_deploy_and_the_old_release_keeps_working(
    deployed: Stack, tmp_path: Path
) -> None:
    workers_before = [c.id for c in _running(deployed, "worker")]
    redis_before = _running(deployed, "redis")[0].id
    _set_version(deployed, "v3")
    broken = deployed.dir / "broken.yaml"
    broken.write_text("processes:\n  worker:\n    health_command: python3 -c 'raise SystemExit(1)'\n")
    try:
        result = deployed.ck("up", "--timeout", "240", check=False, timeout=600, extra_config=("broken.yaml",))
    finally:
        _set_version(deployed, "v2")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the processes of release" in result.stderr and "did not turn healthy" in result.stderr, result.stderr
    assert "worker" in result.stderr

    assert [c.id for c in _running(deployed, "worker")] == workers_before
    assert _running(deployed, "redis")[0].id == redis_before
    assert deployed.https("/version").json() == {"version": "v2"}
    assert deployed.https("/enqueue/after-failure", method="POST").status_code == 200
    seen = _wait_done(deployed, {"after-failure"})
    assert "after-failure" in seen["done"]
    assert "v3" not in seen["by_version"], seen["by_version"]


def test_rollback_puts_the_worker_back_on_the_old_release(deployed: Stack) -> None:
    """Releases v1 and v2 went live (v3 failed above): a rollback goes to v1, for the worker as for the app."""
    workers_before = {c.id for c in _running(deployed, "worker")}
    redis_before = _running(deployed, "redis")[0].id
    deployed.ck("rollback", timeout=600)
    assert deployed.https("/version").json() == {"version": "v1"}
    workers = _running(deployed, "worker")
    assert len(workers) == 1 and workers[0].id not in workers_before
    assert workers[0].image == _running(deployed, "app")[0].image
    assert _running(deployed, "redis")[0].id == redis_before
    before = _done(deployed)["by_version"].get("v1", 0)
    assert deployed.https("/enqueue/after-rollback", method="POST").status_code == 200
    seen = _wait_done(deployed, {"after-rollback"})
    assert seen["by_version"].get("v1", 0) == before + 1, seen["by_version"]


def test_the_fastapi_worker_template_comes_up_and_its_worker_runs_jobs(
    make_stack: Any, testenv: Any, tmp_path: Path
) -> None:
    """Last: making this stack takes the module's worker-app down."""
    source = tmp_path / "tmpl-worker"
    source.mkdir()
    init = subprocess.run(
        [sys.executable, "-m", "composekit.cli", "init", "--template", "fastapi-worker", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert init.returncode == 0, init.stderr
    stack: Stack = make_stack(
        source, "tmpl-worker", images={"postgres": testenv.postgres_image, "redis": testenv.redis_image}
    )
    stack.ck("up", "--no-smoke", timeout=600)
    created = stack.wait_https("/")
    assert created.status_code == 200 and created.json()["app"] == "notes-worker"
    note = stack.https("/notes", method="POST", json={"text": "quiet"}).json()
    assert stack.https(f"/notes/{note['id']}/shout", method="POST").status_code == 202
    deadline = time.monotonic() + 60
    texts: list[str] = []
    while time.monotonic() < deadline:
        texts = [n["text"] for n in stack.https("/notes").json()]
        if texts == ["QUIET"]:
            break
        time.sleep(0.5)
    assert texts == ["QUIET"], texts
    assert f"shouted note {note['id']}" in stack.ck("logs", "worker").stdout
