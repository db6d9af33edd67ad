"""The example stack on the real engine with Traefik reading its routes from the routes volume: HTTPS with a Pebble
certificate, no container holding the Docker socket, the routes writable only by the network-less routes
container, and proxy headers trusted from Traefik's fixed address only."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "stacks" / "fastapi"
NAME = "proxy-shop"

# Run on the `web` network: the app's `/` as seen with forged proxy headers.
FORGE = r"""
import json, urllib.request
forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
req = urllib.request.Request("http://app:8000/", headers=forged)
print(urllib.request.urlopen(req, timeout=10).read().decode())
"""


@pytest.fixture(scope="module")
def shop(make_stack: Any) -> Stack:
    stack: Stack = make_stack(EXAMPLE, NAME)
    stack.ck("up", "--resolve", f"{stack.domain}:127.0.0.1", "--ca-file", str(stack.env.roots))
    return stack


def inspect(stack: Stack, service: str) -> Any:
    return stack.docker.container.inspect(stack.containers()[service].id)


def address_on(container: Any, network: str) -> str:
    return str(container.network_settings.networks[network].ip_address)


def test_https_with_a_pebble_certificate_through_the_proxy(shop: Stack) -> None:
    response = shop.wait_https("/")
    assert response.status_code == 200
    assert response.json()["scheme"] == "https"  # X-Forwarded-Proto from Traefik's address is trusted
    issuer = dict(x[0] for x in shop.peer_certificate()["issuer"])
    assert "Pebble" in issuer["commonName"]


def test_no_container_holds_the_docker_socket(shop: Stack) -> None:
    for service, c in shop.containers().items():
        mounts = shop.docker.container.inspect(c.id).mounts
        assert [str(m.source) for m in mounts if "docker.sock" in str(m.source)] == [], service
    assert "socket-proxy" not in shop.containers()


def test_only_the_routes_container_writes_traefiks_routes(shop: Stack) -> None:
    traefik, routes = inspect(shop, "traefik"), inspect(shop, "routes")
    volume = f"{NAME}_routes"
    assert [(m.destination, m.rw) for m in traefik.mounts if m.name == volume] == [("/etc/traefik/dynamic", False)]
    assert [(m.destination, m.rw) for m in routes.mounts] == [("/routes", True)]
    assert str(routes.host_config.network_mode) == "none"
    assert routes.host_config.readonly_rootfs and routes.host_config.cap_drop == ["ALL"]
    assert routes.host_config.port_bindings in (None, {})
    # The app carries no Traefik labels: routes come from the file, and Traefik cannot read the engine at all.
    assert [k for k in (inspect(shop, "app").config.labels or {}) if k.startswith("traefik.")] == []
    text = str(
        shop.docker.container.execute(routes.id, ["python3", "-c", "print(open('/routes/composekit.yml').read())"])
    )
    assert f"Host(`{shop.domain}`)" in text and "url: http://proxy-shop-app-" in text


def test_traefik_has_the_fixed_address_the_app_trusts(shop: Stack) -> None:
    traefik = inspect(shop, "traefik")
    app = inspect(shop, "app")
    trusted = next(e.split("=", 1)[1] for e in app.config.env if e.startswith("FORWARDED_ALLOW_IPS="))
    assert address_on(traefik, f"{NAME}_web") == trusted
    assert re.fullmatch(r"10\.\d+\.\d+\.2", trusted)


def test_forged_proxy_headers_from_another_container_are_not_trusted(shop: Stack) -> None:
    out = shop.docker.run(
        shop.env.python_image,
        ["python3", "-c", FORGE],
        networks=[f"{NAME}_web"],
        remove=True,
        name=f"{NAME}-forger",
    )
    body = json.loads(str(out))
    assert body["scheme"] == "http"
    assert body["client"] != "203.0.113.9"
    # Control: the same request from Traefik's address is trusted.
    control = json.loads(str(shop.docker.container.execute(shop.containers()["traefik"].id, ["python3", "-c", FORGE])))
    assert (control["scheme"], control["client"]) == ("https", "203.0.113.9")


def test_traefiks_access_log_has_a_404_and_no_line_for_a_fast_200_the_app_logs(shop: Stack) -> None:
    """The access log keeps what gunicorn's log lacks (render/traefik.py access_log): an answer that is not a 2xx is
    there; a fast 200 the app served is in the app's log only."""
    assert shop.https("/?access-log-probe=served").status_code == 200
    assert shop.https("/access-log-probe-missing").status_code == 404
    traefik, app = shop.containers()["traefik"].id, shop.containers()["app"].id
    deadline = time.monotonic() + 30
    while True:  # Traefik writes the line after the answer, the engine's log pipe after that: bounded poll
        traefik_log = str(shop.docker.container.logs(traefik))
        if "access-log-probe-missing" in traefik_log or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert re.search(r'"GET /access-log-probe-missing HTTP/1\.1" 404 ', traefik_log), traefik_log[-2000:]
    assert "access-log-probe=served" in str(shop.docker.container.logs(app))
    assert "access-log-probe=served" not in traefik_log
