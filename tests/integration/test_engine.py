"""Docker daemon restarts with the example stack serving: the real engine, Traefik, Pebble, HTTPS.

The module holds the host ports lock (make_stack) the whole time, because restarting dockerd breaks every
docker command in flight. It restarts the dockerd of scripts/setup-env.sh (scripts/dockerd-restart.sh) with
a daemon.json of its own, in order: (b) the defaults, then doctor's warnings, then (a) the settings for
servers, then a restart under load; and always restores the engine's original command line at the end.
The Swarm-node refusal is a unit test with an injected `docker info` (tests/unit/test_engine_settings.py):
a real Swarm here would mean a swarm init/leave on the engine every helper shares.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Stack
from .restart_load import (
    SERVER_SETTINGS,
    HttpsLoad,
    pebble_orders,
    restart_dockerd,
    restore_engine,
    serial,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.exclusive]

EXAMPLE = REPO / "stacks" / "fastapi"


@pytest.fixture(scope="module")
def daemon_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("daemon-json")
    (d / "defaults.json").write_text("{}\n")
    (d / "server.json").write_text(json.dumps(SERVER_SETTINGS, indent=2) + "\n")
    return {"defaults": d / "defaults.json", "server": d / "server.json"}


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Iterator[Stack]:
    """The example stack, deployed; the engine is given back as it was when the module ends."""
    made: Stack = make_stack(EXAMPLE, "es-restart")
    try:
        made.ck("up", "--no-smoke")
        made.wait_https("/")
        yield made
    finally:
        restore_engine()


def doctor_engine_checks(stack: Stack) -> dict[str, tuple[str, str]]:
    result = stack.ck("doctor", "--json", check=False)
    checks = json.loads(result.stdout)["checks"]
    return {c["name"]: (c["status"], c["detail"]) for c in checks if c["name"].startswith("engine ")}


def containers(stack: Stack) -> dict[str, tuple[str, int]]:
    return {service: (c.id, c.restart_count) for service, c in stack.containers().items()}


def test_defaults_the_stack_comes_back_with_the_same_certificate(stack: Stack, daemon_files: dict[str, Path]) -> None:
    before_serial = serial(stack.domain, stack.env.roots)
    before_orders = pebble_orders()
    t0 = time.monotonic()
    stopped, started = restart_dockerd(daemon_files["defaults"])
    back = wait_serving(stack.domain, stack.env.roots, since=t0)
    print(
        f"\ndefaults: dockerd stopped in {stopped:.1f} s, answered {started:.1f} s after start; "
        f"HTTPS served again {back:.1f} s after the stop began"
    )
    assert serial(stack.domain, stack.env.roots) == before_serial
    assert pebble_orders() == before_orders, "Traefik ordered a new certificate after the restart"
    one_shot = {"migrate", "files"}  # they ran to completion before the restart: exited is their state
    assert {s: c.state.status for s, c in stack.containers().items() if s not in one_shot} == {
        s: "running" for s in stack.containers() if s not in one_shot
    }


def test_doctor_warns_without_the_settings(stack: Stack) -> None:
    engine = doctor_engine_checks(stack)
    assert engine["engine live-restore"] == (
        "warn",
        "off: every container stops when dockerd stops (each engine upgrade or restart)",
    )
    status, detail = engine["engine userland-proxy"]
    # The stack publishes 80 and 443: the live proof is the docker-proxy processes of this dockerd.
    assert status == "warn", detail
    assert re.match(r"on \(\d+ docker-proxy process\(es\) of dockerd \(pid \d+\)\)", detail), detail
    assert engine["engine log rotation"][0] == "warn"


def test_with_the_settings_a_restart_under_load_loses_nothing(stack: Stack, daemon_files: dict[str, Path]) -> None:
    t0 = time.monotonic()
    restart_dockerd(daemon_files["server"])  # applying userland-proxy=false restarts the containers once
    print(
        f"\nsettings applied; HTTPS served again {wait_serving(stack.domain, stack.env.roots, since=t0):.1f} s "
        "after the stop began"
    )
    engine = doctor_engine_checks(stack)
    assert engine["engine live-restore"] == ("ok", "on: containers keep running while dockerd restarts")
    assert engine["engine userland-proxy"][0] == "ok"
    assert engine["engine log rotation"][0] == "ok"

    before = containers(stack)
    before_serial = serial(stack.domain, stack.env.roots)
    with HttpsLoad(stack.domain, stack.env.roots, threads=4, max_seconds=120) as load:
        time.sleep(2)
        stopped, started = restart_dockerd(daemon_files["server"])
        time.sleep(3)
        result = load.stop()
    print(
        f"live-restore + userland-proxy=false: {result}; dockerd stopped in {stopped:.1f} s, "
        f"answered {started:.1f} s after start"
    )
    assert result.sent > 100
    assert result.failed == 0, str(result)
    assert containers(stack) == before  # same ids, no restart
    assert serial(stack.domain, stack.env.roots) == before_serial
