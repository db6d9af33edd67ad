"""The shared edge on a remote engine (`host: ssh://`): the test environment's own sshd in front of this machine's
engine (tests/integration/sshd.py). An app with edge: shared is deployed through it (the edge created there), then
`composekit edge status` and `edge logs` answer over the same connection, and a second app joins the edge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from composekit.render.edge import CREATED_BY_LABEL, EDGE_PROJECT

from .conftest import Stack, TestEnv
from .sshd import ALIAS, ssh_config  # noqa: F401 (the fixture)
from .test_edge import _remove_edge, make_app
from .test_edge_move import edge_containers, wait_no_edge

# edge: the engine has one shared edge (Compose project composekit-edge) whatever the lane, so the edge modules
# take turns (the edge lock, lanes.py) rather than run beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.edge]

FIRST, SECOND = "edge-ssh-a", "edge-ssh-b"


@pytest.fixture(scope="module")
def apps(
    ssh_config: Path,  # noqa: F811
    host_ports: None,
    testenv: TestEnv,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Stack]]:
    wait_no_edge()
    root = tmp_path_factory.mktemp("edge-ssh")
    made = {n: make_app(testenv, root, n, f"{n}.composekit.test", host=ALIAS) for n in (FIRST, SECOND)}
    try:
        for s in made.values():
            s.break_stale_lock()
        yield made
    finally:
        for s in made.values():
            s.ck("down", "--delete-volumes", check=False, timeout=120)
            s.break_stale_lock()
        if any((c.config.labels or {}).get(CREATED_BY_LABEL) in made for c in edge_containers()):
            made[FIRST].ck("edge", "down", "--force", "--delete-acme", check=False, timeout=120)
            _remove_edge()
            if DockerClient().volume.exists(f"{EDGE_PROJECT}_routes"):
                DockerClient().volume.remove([f"{EDGE_PROJECT}_routes"])


def test_an_app_on_the_edge_deploys_over_ssh_and_the_edge_commands_answer(apps: dict[str, Stack]) -> None:
    first = apps[FIRST]
    done = first.ck("up", "--no-smoke", timeout=600)
    assert f"engine: {ALIAS}" in done.stderr and "starting the shared edge" in done.stderr, done.stderr
    first.wait_https("/")
    assert first.https("/").json() == {"app": FIRST, "version": "v1"}
    status = json.loads(first.ck("edge", "status", "--json").stdout)
    assert status["engine"].startswith(ALIAS), status
    assert sorted(status["apps"]) == [FIRST] and status["created_by"] == FIRST
    assert f"{FIRST}_web" in status["networks"]
    logs = first.ck("edge", "logs", "--tail", "50")
    assert logs.stdout.strip(), logs  # Traefik's log, read through the SSH connection


def test_a_second_app_joins_the_edge_over_ssh(apps: dict[str, Stack]) -> None:
    first, second = apps[FIRST], apps[SECOND]
    second.ck("up", "--no-smoke", timeout=600)
    second.wait_https("/")
    assert second.https("/").json() == {"app": SECOND, "version": "v1"}
    assert first.https("/").json() == {"app": FIRST, "version": "v1"}
    status = json.loads(second.ck("edge", "status", "--json").stdout)
    assert sorted(status["apps"]) == [FIRST, SECOND]
    second.ck("down", timeout=120)
    status = json.loads(first.ck("edge", "status", "--json").stdout)
    assert sorted(status["apps"]) == [FIRST]
