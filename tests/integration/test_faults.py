"""Faults on a running stack, for real: a gunicorn worker killed under HTTPS load, the app's main process
SIGKILLed from the host, Traefik restarted while the ACME CA is unreachable. The scenarios live in
faults.py (scripts/fault_report.py prints the same figures); each prints what it measured."""

from __future__ import annotations

from typing import Any

import pytest

from . import faults
from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "stacks" / "fastapi"
CLIENT_THREADS = 4


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Stack:
    # cpus 1 x 3 workers per core: 3 workers, so killing one leaves two serving.
    made: Stack = make_stack(EXAMPLE, "faults", app={"cpus": 1, "workers_per_core": 3, "memory": "2G"})
    made.ck("up", "--no-smoke")
    made.wait_https("/health")
    return made


def test_killed_worker_is_replaced_and_only_its_requests_fail(stack: Stack) -> None:
    result = faults.kill_one_worker_under_load(stack, threads=CLIENT_THREADS)
    print(f"\nworker kill: {result}")
    assert result.workers_before == 3
    assert result.seconds_to_replaced is not None, "gunicorn did not replace the killed worker within 30 s"
    assert result.killed_pid not in result.new_pids and len(result.new_pids) == 1
    assert result.workers_after == result.workers_before
    assert result.sent > 200, "the load did not run"
    # Each client thread has one request in flight at a time, so at most CLIENT_THREADS requests can have
    # been on the killed worker; every other request must succeed.
    assert result.failed <= CLIENT_THREADS, result.failures


def test_sigkilled_main_process_is_restarted_healthy_and_serving(stack: Stack) -> None:
    result = faults.kill_app_main_process(stack)
    print(f"\nmain process kill: {result}")
    assert result.seconds_to_healthy is not None, f"not healthy again within 120 s: {result.last_seen}"
    assert result.restart_count_after == result.restart_count_before + 1
    assert result.seconds_to_serving is not None, "HTTPS did not answer 200 again within 120 s"


def test_stored_certificate_is_served_when_the_ca_is_unreachable(stack: Stack) -> None:
    result = faults.ca_unreachable_restart(stack)
    print(f"\nCA unreachable at restart: {result}")
    assert result.reachable_before, "the probe cannot reach Pebble even without the rule: it proves nothing"
    assert not result.reachable_during, "Traefik could still reach the ACME CA"
    assert result.reachable_after_cleanup, "the iptables rule was not removed"
    assert result.seconds_to_serving is not None, "Traefik did not serve HTTPS again within 90 s"
    assert result.serial_after == result.serial_before  # chain verified against Pebble's roots when read
    rules = faults._iptables("-S", "INPUT").stdout
    assert f"composekit fault test {stack.name}" not in rules
