"""The example stack on the real engine with Traefik reading Docker through composekit's socket proxy:
HTTPS with a Pebble certificate, no socket in Traefik, writes refused at the proxy, and proxy headers
trusted from Traefik's fixed address only."""

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

# Run inside the proxy container: raw HTTP/1.1 to the proxy, one connection per request.
PROBE = r"""
import http.client, json, sys
def ask(method, path, body=None, limit=200):
    c = http.client.HTTPConnection("127.0.0.1", 2375, timeout=10)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    r = c.getresponse()
    out = (r.status, r.read().decode(errors="replace")[:limit])
    c.close()
    return out
cid, app = sys.argv[1], sys.argv[2]
status, inspection = ask("GET", f"/v1.41/containers/{app}/json", limit=10**7)
print(json.dumps({
    "create": ask("POST", "/v1.41/containers/create", json.dumps({"Image": "x", "Cmd": ["id"]})),
    "archive": ask("GET", f"/v1.41/containers/{cid}/archive?path=/etc/passwd"),
    "exec": ask("POST", f"/containers/{cid}/exec", json.dumps({"Cmd": ["id"]})),
    "traversal": ask("GET", "/v1.41/containers/json/../create"),
    "list": ask("GET", "/v1.41/containers/json")[0],
    "inspect": status,
    "app_env": json.loads(inspection)["Config"]["Env"],
    "app_labels": sorted(json.loads(inspection)["Config"]["Labels"]),
}))
"""

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


def test_only_the_proxy_mounts_the_docker_socket(shop: Stack) -> None:
    traefik, proxy = inspect(shop, "traefik"), inspect(shop, "socket-proxy")
    assert [m.destination for m in traefik.mounts if "docker.sock" in str(m.source)] == []
    assert [(str(m.source), m.rw) for m in proxy.mounts if "docker.sock" in str(m.destination)] == [
        ("/var/run/docker.sock", False)
    ]
    assert proxy.host_config.readonly_rootfs and proxy.host_config.cap_drop == ["ALL"]
    assert proxy.host_config.port_bindings in (None, {})
    # The app is not on the proxy's network.
    assert f"{NAME}_socket-proxy" not in inspect(shop, "app").network_settings.networks


def test_traefik_made_only_allowed_calls(shop: Stack) -> None:
    traefik_ip = address_on(inspect(shop, "traefik"), f"{NAME}_socket-proxy")
    lines = str(shop.docker.container.logs(shop.containers()["socket-proxy"].id)).splitlines()
    from_traefik = [line for line in lines if f" from {traefik_ip}" in line]
    assert [line for line in from_traefik if not line.startswith("socket-proxy: allow ")] == []
    calls = {re.sub(r"[0-9a-f]{64}", "{id}", line.split(" from ")[0]) for line in from_traefik}
    print("Traefik's calls through the proxy:", sorted(calls))
    assert {"socket-proxy: allow GET /v1.41/containers/json", "socket-proxy: allow GET /v1.41/events"} <= calls


def test_the_proxy_log_stays_quiet_while_the_stack_idles(shop: Stack) -> None:
    # Healthchecks run every 5 s in three containers; Traefik must not re-list on each (it reacts to
    # start/die/health changes only) and the proxy's own healthcheck is not logged.
    proxy = shop.containers()["socket-proxy"].id
    before = len(str(shop.docker.container.logs(proxy)).splitlines())
    time.sleep(16)
    new_lines = str(shop.docker.container.logs(proxy)).splitlines()[before:]
    assert new_lines == []


def test_the_proxy_refuses_writes_and_file_reads(shop: Stack) -> None:
    proxy = shop.containers()["socket-proxy"]
    traefik_id, app_id = shop.containers()["traefik"].id, shop.containers()["app"].id
    answers = json.loads(str(shop.docker.container.execute(proxy.id, ["python3", "-c", PROBE, traefik_id, app_id])))
    assert answers["create"][0] == 403 and "forbidden by composekit's socket proxy" in answers["create"][1]
    assert answers["archive"][0] == 403
    assert answers["exec"][0] == 403
    assert answers["traversal"][0] == 403
    assert (answers["list"], answers["inspect"]) == (200, 200)
    # Traefik sees the app's labels, never its environment (env_file secrets would be in it).
    assert "traefik.enable" in answers["app_labels"]
    assert answers["app_env"] == []
    assert any(e.startswith("FORWARDED_ALLOW_IPS=") for e in inspect(shop, "app").config.env)
    logs = shop.docker.container.logs(proxy.id)
    assert "deny POST /v1.41/containers/create from 127.0.0.1: method not allowed" in logs
    assert f"deny GET /v1.41/containers/{traefik_id}/archive from 127.0.0.1: path not allowed" in logs
    assert "/etc/passwd" not in logs  # queries are not logged


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
