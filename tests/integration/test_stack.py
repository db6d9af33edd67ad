"""The example stack for real: engine, local images, Traefik, Pebble, HTTPS. Tests run in order on one
deployment (module-scoped), the way a user deploys, redeploys and restarts it."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "stacks" / "fastapi"
HOST_CPUS = os.cpu_count() or 1


@pytest.fixture(scope="module")
def shop(make_stack: Any) -> Stack:
    # cpus 1 x 3 workers per core = 3 workers; sized from the host's cores it would be 3 x HOST_CPUS.
    # Not "shop": that is the example's project (scripts/example.sh), whose volumes the suite must not touch.
    stack: Stack = make_stack(EXAMPLE, "itshop", app={"cpus": 1, "workers_per_core": 3, "memory": "2G"})
    # The first deploy runs up's smoke test too: over HTTPS to this machine, trusting only Pebble's roots.
    result = stack.ck("up", "--resolve", f"{stack.domain}:127.0.0.1", "--ca-file", str(stack.env.roots))
    assert result.stdout.strip().endswith(f"https://{stack.domain}/")
    assert "smoke" in result.stderr
    return stack


def test_https_answers_200_trusting_only_pebble(shop: Stack) -> None:
    response = shop.wait_https("/")
    assert response.status_code == 200
    body = response.json()
    assert body["app"] == "shop"
    assert body["scheme"] == "https"  # X-Forwarded-Proto from Traefik was trusted (proxy headers)


# The level words gunicorn (`[ERROR]`), uvicorn and Python's logging (`ERROR:`) print, and Traefik's (`ERR`, `WRN`).
LOUD = re.compile(r"\[(ERROR|WARNING|CRITICAL)\]|\b(ERROR|WARNING|CRITICAL):|\s(ERR|WRN|FTL)\s")


def test_a_healthy_start_logs_no_error_or_warning(shop: Stack) -> None:
    """An ERROR or WARNING in every healthy start sends users chasing a non-problem (gunicorn 27's control socket
    on the read-only root did, and Traefik 3.7's warnings about settings composekit left unset)."""
    containers = shop.containers()
    loud = {
        service: [
            line for line in str(shop.docker.container.logs(containers[service])).splitlines() if LOUD.search(line)
        ]
        for service in ("app", "migrate", "traefik")
    }
    assert loud == {"app": [], "migrate": [], "traefik": []}, "\n".join(
        f"{service}: {line}" for service, lines in loud.items() for line in lines
    )


def test_certificate_is_issued_by_pebble(shop: Stack) -> None:
    cert = shop.peer_certificate()
    issuer = dict(x[0] for x in cert["issuer"])
    subject_alt = [v for k, v in cert["subjectAltName"] if k == "DNS"]
    assert "Pebble" in issuer["commonName"]
    assert "TRAEFIK DEFAULT CERT" not in json.dumps(cert)
    assert subject_alt == [shop.domain]


def test_http_redirects_to_https(shop: Stack) -> None:
    response = shop.http("/notes?x=1")
    assert response.status_code in (301, 308)
    assert response.headers["location"] == f"https://{shop.domain}/notes?x=1"


def test_security_headers_and_no_server_header(shop: Stack) -> None:
    response = shop.https("/health")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "server" not in response.headers


def test_migration_ran_before_the_app_started(shop: Stack) -> None:
    containers = shop.containers()
    migrate, app = containers["migrate"], containers["app"]
    assert migrate.state.status == "exited" and migrate.state.exit_code == 0
    assert migrate.state.finished_at <= app.state.started_at
    body = shop.https("/").json()
    assert body["schema_version"] == 1
    assert body["migrated_at"] < body["started_at"]


def test_app_runs_as_non_root(shop: Stack) -> None:
    app = shop.containers()["app"]
    assert str(shop.docker.container.execute(app, ["id", "-u"])).strip() != "0"


def test_worker_count_follows_the_container_cpu_limit(shop: Stack) -> None:
    status = json.loads(shop.ck("status", "--json").stdout)
    app = next(s for s in status["services"] if s["service"] == "app")
    assert app["workers"] == 3
    assert 3 * HOST_CPUS != 3 or HOST_CPUS == 1  # the host-count answer differs on this machine
    logs = shop.ck("logs", "app").stdout
    assert "composekit: workers=3 (cgroup" in logs


def test_second_up_recreates_nothing(shop: Stack) -> None:
    # The one-shot services (the migration, the `files` copy) run again at every up; nothing is recreated.
    one_shot = ("migrate", "files")
    before = {name: (c.id, c.state.started_at) for name, c in shop.containers().items() if name not in one_shot}
    shop.ck("up", "--no-smoke")
    after = {name: (c.id, c.state.started_at) for name, c in shop.containers().items() if name not in one_shot}
    assert after == before


def test_restart_always_brings_a_killed_app_back(shop: Stack) -> None:
    app = shop.containers()["app"]
    os.kill(app.state.pid, signal.SIGKILL)  # the container's PID 1, from the host
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        again = shop.docker.container.inspect(app.id)
        if again.restart_count >= 1 and again.state.health and again.state.health.status == "healthy":
            break
        time.sleep(1)
    else:
        pytest.fail(f"app did not come back healthy: {again.state.status} {again.state.health}")
    assert shop.wait_https("/health").status_code == 200


def test_failing_migration_leaves_the_running_app_serving(shop: Stack) -> None:
    app_before = shop.containers()["app"].id
    (shop.dir / "bad-migration.yaml").write_text(
        "migrate:\n  command: [python3, -c, \"import sys; print('relation notes already exists'); sys.exit(3)\"]\n"
    )
    result = shop.ck("up", check=False, extra_config=("bad-migration.yaml",))
    assert result.returncode == 1
    assert "error: the migration failed (exit code 3), so the app was not started." in result.stderr
    assert "The app that was running before is untouched and still serving." in result.stderr
    assert "relation notes already exists" in result.stderr
    assert shop.containers()["app"].id == app_before
    assert shop.https("/health").status_code == 200


def test_data_and_certificate_survive_down_and_up(shop: Stack) -> None:
    shop.ck("up", "--no-smoke")  # back to the good migration
    created = shop.https("/notes", method="POST", json={"text": "kept across redeploys"})
    assert created.status_code == 201
    serial = shop.peer_certificate()["serialNumber"]
    down = shop.ck("down")
    assert "kept volumes: itshop_acme, itshop_data" in down.stderr
    assert shop.containers() == {}
    shop.ck("up", "--no-smoke")
    notes = shop.wait_https("/notes").json()
    assert {"id": created.json()["id"], "text": "kept across redeploys"} in notes
    assert shop.peer_certificate()["serialNumber"] == serial  # acme.json kept: no new certificate


def _acme_json_mode(stack: Stack) -> int:
    volume = stack.docker.volume.inspect(f"{stack.name}_acme")
    return os.stat(Path(volume.mountpoint) / "acme.json").st_mode & 0o777


def test_acme_json_is_private(shop: Stack) -> None:
    assert _acme_json_mode(shop) == 0o600
