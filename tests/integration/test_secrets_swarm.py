"""Secrets as environment variables in mode: swarm, for real, on the two-node test Swarm (the `swarm_cluster`
fixture): app/secrets and `database/variables: database_url` as Docker secrets that `docker stack deploy` reads
from the files here, put into the app's and the migration job's process environment by secret_env.py. The same
checks as tests/integration/test_secrets_env.py (whose helpers this uses): the app and the migration read each
value; no container or service inspect, log, rendered file, image layer or composekit output holds one. The app is
pinned to the manager, where its data volume (the migration's report) and the database live.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .swarm_cluster import SwarmCluster, swarm_cluster  # noqa: F401 (the fixture)
from .test_secrets_env import Deployed, check_no_value_leaks, check_values_are_read, deploy

# exclusive: putting the engine in a swarm and taking it out again (swarm init/join/leave) disturbs Docker's embedded
# DNS for the containers of other stacks on the engine (CI saw `failed to resolve host 'db'` and Traefik's 502s in
# lane 1 at those moments), so nothing runs beside these modules; `swarm`: the swarm modules share one swarm, started
# by the first of them and left at the end of the session (tests/integration/lanes.py).
pytestmark = [pytest.mark.integration, pytest.mark.swarm]


@pytest.fixture(scope="module")
def deployed(swarm_cluster: SwarmCluster, make_stack: Any, testenv: Any) -> Iterator[Deployed]:  # noqa: F811
    swarm_cluster.give_node2(testenv.python_image)  # composekit ships only the app's own layers to node2
    deployed = deploy(
        make_stack,
        testenv,
        "secrets-sw",
        "database_url",
        "--timeout",
        "600",
        mode="swarm",
        app={"replicas": 1, "placement": ["node.role == manager"]},
        swarm={"nodes": {swarm_cluster.node2_hostname: swarm_cluster.node2_host}},
    )
    yield deployed
    # Test-owned volumes (test data); the last test has normally taken the stack down already.
    deployed.stack.ck("down", "--delete-volumes", check=False, timeout=180)


def test_swarm_secrets_are_read_by_the_app_and_the_migration_job(deployed: Deployed) -> None:
    check_values_are_read(deployed)


def test_swarm_secrets_leak_nowhere(deployed: Deployed, tmp_path: Path) -> None:
    check_no_value_leaks(deployed, tmp_path)


def test_swarm_a_rotated_secret_rolls_out_at_the_next_up(deployed: Deployed, tmp_path: Path) -> None:
    """Same code, new SECRET_KEY: a new Docker secret (its name carries the value's version), so Swarm updates the
    app and the migration job runs with the new value."""
    (deployed.stack.dir / "secrets" / "secret_key").write_text(secrets.token_urlsafe(32) + "\n")
    result = deployed.stack.ck("up", "--no-smoke", "--timeout", "600")
    rotated = Deployed(deployed.stack, deployed.variables, result.stdout + result.stderr, swarm=True)
    assert rotated.secret_key != deployed.secret_key
    check_values_are_read(rotated)
    check_no_value_leaks(rotated, tmp_path)


def test_swarm_down_delete_volumes_deletes_them_though_the_finished_job_container_outlives_the_stack(
    deployed: Deployed,
) -> None:
    """The migration job's ended task container outlives `docker stack rm` and kept the volumes in use, so
    `down --delete-volumes` failed: down waits for the stack's containers, removes the ended ones, then the volumes.
    (Runs last: it takes the module's stack down.)"""
    label = f"label=com.docker.stack.namespace={deployed.stack.name}"
    before = subprocess.run(["docker", "volume", "ls", "-q", "--filter", label], capture_output=True, text=True)
    assert before.stdout.split(), "the deployed stack should have volumes"
    deployed.stack.ck("down", "--delete-volumes", timeout=240)
    after = subprocess.run(["docker", "volume", "ls", "-q", "--filter", label], capture_output=True, text=True)
    assert after.stdout.split() == []
    left = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True)
    assert left.stdout.split() == []
