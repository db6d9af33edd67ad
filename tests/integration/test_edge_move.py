"""Moving a running stack from edge: own onto the shared edge at its next `up` (engine/edge_move.py): the real engine,
Traefik and Pebble.

A stack with its own Traefik gets a Pebble certificate and data in a volume; its composekit.yaml then says
edge: shared, and `up` moves it while HTTPS load runs against it. The edge serves the very certificate the own Traefik
had (same fingerprint: no new order), the data volume is intact, the own ACME volume is kept and both originals are
backed up in the edge's volume. The port gap `up` reports and the load's failures are printed (figures, not timed
assertions). Setting edge: own again is refused while the edge routes the app.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from python_on_whales import DockerClient

from composekit.render.edge import CREATED_BY_LABEL, EDGE_PROJECT

from .conftest import Stack, TestEnv
from .restart_load import HttpsLoad
from .test_edge import _remove_edge, edge_traefik, make_app

# edge: the engine has one shared edge (Compose project composekit-edge) whatever the lane, so the edge modules
# take turns (the edge lock, lanes.py) rather than run beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.edge]

NAME = "edge-move"
DOMAIN = f"{NAME}.composekit.test"
REPORT = Path("/tmp/composekit-edge-move.json")  # the figures of the last run, for docs/benchmarks


def fingerprint(stack: Stack) -> str:
    """sha256 of the certificate served for the domain (verified against Pebble's roots)."""
    context = ssl.create_default_context(cafile=str(stack.env.roots))
    with (
        socket.create_connection(("127.0.0.1", stack.env.lane.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=stack.domain) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def set_edge(stack: Stack, value: str) -> None:
    path = stack.dir / "composekit.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "edge": value}, sort_keys=False))


def in_app(stack: Stack, code: str) -> str:
    app = stack.containers()["app"]
    return str(DockerClient().container.execute(app.id, ["python3", "-c", code])).strip()


def edge_containers() -> list[Any]:
    return list(
        DockerClient().container.list(all=True, filters=[("label", f"com.docker.compose.project={EDGE_PROJECT}")])
    )


def wait_no_edge(timeout: float = 600) -> None:
    """The edge is one per engine: another run's (another lane's) is waited for, never removed; skipped after
    ``timeout``, saying whose it is."""
    deadline = time.monotonic() + timeout
    while found := edge_containers():
        if time.monotonic() > deadline:
            by = {(c.config.labels or {}).get(CREATED_BY_LABEL, "?") for c in found}
            pytest.skip(f"another run's shared edge (created by {', '.join(sorted(by))}) is on this engine")
        time.sleep(5)


def remove_own_edge() -> None:
    """The edge this module created (its Traefik labelled created-by NAME); another's is left alone."""
    found = edge_containers()
    if any((c.config.labels or {}).get(CREATED_BY_LABEL) == NAME for c in found):
        _remove_edge()


@pytest.fixture(scope="module")
def own(host_ports: None, testenv: TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    wait_no_edge()
    app = {"module": "app.main:app", "workers": 1, "volumes": {"data": "/data"}}
    stack = make_app(testenv, tmp_path_factory.mktemp("move"), NAME, DOMAIN, edge="own", app=app)
    try:
        stack.break_stale_lock()
        stack.ck("up", "--no-smoke", timeout=600)
        yield stack
    finally:
        stack.ck("down", "--delete-volumes", check=False, timeout=120)
        stack.break_stale_lock()
        docker = DockerClient()
        if any((c.config.labels or {}).get(CREATED_BY_LABEL) == NAME for c in edge_containers()):
            stack.ck("edge", "down", "--force", "--delete-acme", check=False, timeout=120)
            remove_own_edge()
            if docker.volume.exists(f"{EDGE_PROJECT}_routes"):
                docker.volume.remove([f"{EDGE_PROJECT}_routes"])
        if docker.volume.exists(f"{NAME}_acme"):  # test-owned
            docker.volume.remove([f"{NAME}_acme"])


def test_an_own_edge_stack_moves_onto_the_edge_keeping_its_certificate_and_data(own: Stack) -> None:
    own.wait_https("/")
    assert "traefik" in own.containers()
    before = fingerprint(own)
    in_app(own, "open('/data/kept.txt', 'w').write('before the move')")
    set_edge(own, "shared")
    with HttpsLoad(own.domain, own.env.roots, threads=2, max_seconds=400, port=own.env.lane.https_port) as load:
        done = own.ck("up", "--no-smoke", timeout=400)
        result = load.stop()
    said = re.search(r"were unanswered for ([0-9.]+) s", done.stderr)
    assert said is not None, done.stderr
    figures = {"gap_seconds": float(said.group(1)), "load": str(result), "sent": result.sent, "failed": result.failed}
    print(f"edge move: ports unanswered {said.group(1)} s; HTTPS load during the whole up: {result}")
    REPORT.write_text(json.dumps(figures, indent=2) + "\n")
    assert "merged app edge-move's ACME storage into the edge's: 1 certificate(s) carried over" in done.stderr
    assert fingerprint(own) == before  # the same certificate: carried over, no new order
    assert own.https("/").json() == {"app": NAME, "version": "v1"}
    assert in_app(own, "print(open('/data/kept.txt').read())") == "before the move"
    assert "traefik" not in own.containers()
    edge_traefik(DockerClient())
    status = json.loads(own.ck("edge", "status", "--json").stdout)
    assert sorted(status["apps"]) == [NAME]
    docker = DockerClient()
    assert docker.volume.exists(f"{NAME}_acme")  # never deleted
    listed = docker.container.run(
        own.env.python_image,
        ["python3", "-c", "import os; print(' '.join(sorted(os.listdir('/acme/backups'))))"],
        remove=True,
        volumes=[(f"{EDGE_PROJECT}_acme", "/acme", "ro")],
    )
    assert str(listed).strip().endswith(f".{NAME}"), listed


def test_a_second_up_carries_nothing_again(own: Stack) -> None:
    before = edge_traefik(DockerClient())
    done = own.ck("up", "--no-smoke", timeout=300)
    assert "unanswered" not in done.stderr and "merged" not in done.stderr, done.stderr
    after = edge_traefik(DockerClient())
    assert (after.id, after.state.started_at) == (before.id, before.state.started_at)


def test_moving_back_to_an_own_traefik_is_refused_while_the_edge_routes_the_app(own: Stack) -> None:
    set_edge(own, "own")
    done = own.ck("up", "--no-smoke", check=False, timeout=300)
    set_edge(own, "shared")
    assert done.returncode == 1, done.stderr
    assert f"edge: own: app {NAME} is on the shared edge ({EDGE_PROJECT} routes it)" in done.stderr
    assert "traefik" not in own.containers()
    assert own.https("/").status_code == 200
