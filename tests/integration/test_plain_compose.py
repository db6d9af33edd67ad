"""The rendered stack runs without composekit: `composekit render`, then plain `docker compose build` and
`docker compose up -d --wait` serve the domain over HTTPS with a certificate from the ACME CA (Pebble here), from
the initial routes compose.yaml carries. `composekit up` then takes the same stack over, and a restarted routes
container never puts the initial routes back over the generation `up` wrote."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "stacks" / "fastapi"


def compose(stack: Stack, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Plain `docker compose` on the rendered file, as a user without composekit would run it."""
    file = stack.dir / ".composekit" / "compose.yaml"
    cmd = ["docker", "compose", "-f", str(file), "-p", stack.name, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}\n{result.stderr[-4000:]}"
    return result


def routes_on_disk(stack: Stack) -> str:
    routes = stack.containers()["routes"]
    return str(stack.docker.container.execute(routes.name, ["cat", "/routes/composekit.yml"]))


@pytest.fixture(scope="module")
def plain(make_stack: Any) -> Stack:
    stack: Stack = make_stack(EXAMPLE, "itplain")
    stack.ck("render")
    compose(stack, "build")
    compose(stack, "up", "-d", "--wait", "--wait-timeout", "240")
    return stack


def test_plain_compose_up_serves_the_domain_over_https(plain: Stack) -> None:
    response = plain.wait_https("/", timeout=90)
    assert response.status_code == 200
    assert response.json()["app"] == "shop"
    cert = plain.peer_certificate()
    assert "Pebble" in dict(x[0] for x in cert["issuer"])["commonName"]
    assert [v for k, v in cert["subjectAltName"] if k == "DNS"] == [plain.domain]
    assert "generation initial" in routes_on_disk(plain)
    assert plain.ck("render", "--check").returncode == 0


def test_composekit_up_takes_over_and_a_routes_restart_keeps_its_generation(plain: Stack) -> None:
    plain.ck("up", "--resolve", f"{plain.domain}:127.0.0.1", "--ca-file", str(plain.env.roots))
    live = routes_on_disk(plain)
    assert "generation initial" not in live and f"Host(`{plain.domain}`)" in live
    routes = plain.containers()["routes"]
    plain.docker.container.restart(routes.name)
    assert routes_on_disk(plain) == live
    compose(plain, "up", "-d", "--wait", "--wait-timeout", "240")  # plain compose again over the deployed stack
    assert routes_on_disk(plain) == live
    assert plain.wait_https("/", timeout=60).status_code == 200
