"""`composekit smoke` against real stacks (engine, Traefik, Pebble): every check is shown to catch its failure.

The stacks' domains do not resolve here, so every run connects to 127.0.0.1 (smoke/resolve in the
overlay) and trusts Pebble's roots (smoke/ca_file).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import Stack, TestEnv

pytestmark = pytest.mark.integration

APP = Path(__file__).parent / "apps" / "smoke-app"
FAIL_FLAG = "/tmp/smoke-fail-health"
ALL_CHECKS = [
    "dns",
    "http -> https",
    "tls certificate",
    "tls expiry",
    "health /health",
    "check /api/version",
    "security headers",
    "no version leak",
]


def smoke_settings(roots: Path) -> dict[str, Any]:
    return {"smoke": {"resolve": "127.0.0.1", "ca_file": str(roots)}}


def smoke_json(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    result = stack.ck("smoke", "--json", *args, check=False, timeout=120)
    assert result.returncode in (0, 1), f"smoke crashed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result.returncode, json.loads(result.stdout)


def origin(stack: Stack, scheme: str) -> str:
    """scheme://domain[:port] as smoke names it: the port of this stack's lane, unless it is the scheme's default."""
    lane = stack.env.lane
    port, default = (lane.http_port, 80) if scheme == "http" else (lane.https_port, 443)
    return f"{scheme}://{stack.domain}" + ("" if port == default else f":{port}")


def by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


# one healthy deployment, checked, then looked at with a wrong Host, then broken -------------------------


@pytest.fixture(scope="module")
def healthy(make_stack: Any, testenv: TestEnv) -> tuple[Stack, Any]:
    stack = make_stack(APP, "smoke-ok", **smoke_settings(testenv.roots))
    up = stack.ck("up")  # smoke runs at the end by default and must pass
    return stack, up


def test_up_runs_smoke_and_it_passes(healthy: tuple[Stack, Any]) -> None:
    _stack, up = healthy
    assert "smoke-testing the deployment" in up.stderr
    assert "smoke passed: 8 ok, 0 warn, 0 fail" in up.stderr
    assert up.stdout.strip() == "https://smoke-ok.composekit.test/"


def test_healthy_stack_passes_every_check(healthy: tuple[Stack, Any], testenv: TestEnv) -> None:
    stack, _ = healthy
    code, report = smoke_json(stack)
    assert code == 0, report
    assert report["passed"] is True
    assert statuses(report) == dict.fromkeys(ALL_CHECKS, "ok")
    checks = by_name(report)
    assert checks["http -> https"]["detail"] == (
        f"{origin(stack, 'http')}/health -> 301 Moved Permanently -> https://smoke-ok.composekit.test/health"
    )
    assert checks["tls certificate"]["detail"].startswith("issued by Pebble Intermediate CA")
    assert checks["tls certificate"]["detail"].endswith(f"verifies against the CA file {testenv.roots}")
    assert checks["check /api/version"]["detail"] == "200, contains 'smoke-app', has JSON key 'app.version'"


def test_table_output(healthy: tuple[Stack, Any]) -> None:
    stack, _ = healthy
    result = stack.ck("smoke")
    assert f"smoke: {origin(stack, 'https')}/ at 127.0.0.1" in result.stdout
    assert "smoke passed: 8 ok, 0 warn, 0 fail" in result.stdout


def test_wrong_host_is_caught(healthy: tuple[Stack, Any]) -> None:
    stack, _ = healthy
    code, report = smoke_json(stack, "--resolve", "not-routed.composekit.test:127.0.0.1")
    assert code == 1
    checks = by_name(report)
    assert checks["tls certificate"]["status"] == "fail"
    assert "Traefik's self-signed default certificate (TRAEFIK DEFAULT CERT)" in checks["tls certificate"]["detail"]
    health = checks["health /health"]
    assert health["status"] == "fail"
    assert health["detail"].startswith(
        "404 Not Found: Traefik's own 404 ('404 page not found'), no router matches Host(not-routed.composekit.test)"
    )


def test_health_500_is_caught(healthy: tuple[Stack, Any]) -> None:
    stack, _ = healthy
    stack.containers()["app"].execute(["touch", FAIL_FLAG])
    code, report = smoke_json(stack)
    assert code == 1
    health = by_name(report)["health /health"]
    assert health["status"] == "fail"
    assert health["detail"].startswith(
        '500 Internal Server Error from the app: \'{"status":"failing","flag":"/tmp/smoke-fail-health"}\' in '
    )
    assert health["fix"] == "the app reports a failure on this path: `composekit logs app` shows why"
    # Only the health path broke: the certificate and the route are still fine.
    assert statuses(report)["tls certificate"] == "ok"
    assert statuses(report)["check /api/version"] == "ok"


# an unreachable ACME CA --------------------------------------------------------------------------------


def test_unreachable_acme_ca_names_traefik_default_certificate(make_stack: Any, testenv: TestEnv) -> None:
    stack = make_stack(
        APP, "smoke-noca", acme={"ca_server": "https://host.docker.internal:14999/dir"}, **smoke_settings(testenv.roots)
    )
    up = stack.ck("up", "--smoke-wait", "5", check=False)
    assert up.returncode == 1, up.stderr[-3000:]
    assert "the stack is up, but smoke failed" in up.stderr
    assert "TRAEFIK DEFAULT CERT" in up.stderr

    code, report = smoke_json(stack)
    assert code == 1
    tls = by_name(report)["tls certificate"]
    assert tls["detail"] == (
        "Traefik's self-signed default certificate (TRAEFIK DEFAULT CERT) is served for smoke-noca.composekit.test: "
        "Traefik has no certificate for this domain"
    )
    for cause in ("unreachable or blocked", "DNS", "rate limit", "acme.json", "composekit logs traefik"):
        assert cause in tls["fix"]
    # Everything but the certificate works, which is what points at ACME.
    everything_else = {name: "ok" for name in ALL_CHECKS if name != "tls expiry"}
    assert statuses(report) == {**everything_else, "tls certificate": "fail"}


# a route without the redirect ------------------------------------------------------------------------


def test_missing_redirect_is_caught(make_stack: Any, testenv: TestEnv) -> None:
    stack = make_stack(APP, "smoke-noredirect", **smoke_settings(testenv.roots))
    stack.ck("render")
    compose = yaml.safe_load((stack.dir / ".composekit" / "compose.yaml").read_text())
    static = yaml.safe_load(compose["configs"]["traefik.yml"]["content"])
    del static["entryPoints"]["web"]["http"]
    # Compose merges top-level `configs` by name: this content replaces the rendered traefik.yml.
    (stack.dir / "composekit.override.yaml").write_text(
        yaml.safe_dump({"configs": {"traefik.yml": {"content": yaml.safe_dump(static)}}})
    )
    stack.ck("up", "--no-smoke")
    stack.wait_https("/health")

    code, report = smoke_json(stack)
    assert code == 1
    redirect = by_name(report)["http -> https"]
    assert redirect["status"] == "fail"
    assert redirect["detail"] == (
        f"{origin(stack, 'http')}/health answered 404 Not Found instead of redirecting to "
        f"{origin(stack, 'https')}/health"
    )
    assert "composekit.override.yaml" in redirect["fix"]
    assert [c["name"] for c in report["checks"] if c["status"] != "ok"] == ["http -> https"]


# a certificate near expiry, from a second Pebble that issues 10-day certificates ------------------------

SHORT_PEBBLE_ACME, SHORT_PEBBLE_MGMT = 14010, 15010  # plus the lane's index
VALIDITY_DAYS = 10


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def short_lived_pebble(testenv: TestEnv, workdir: Path) -> Iterator[Path]:
    """A second Pebble (the shared one must not restart: its roots would change) on its own ports (those of the
    lane), validating on the lane's ports, issuing certificates valid for VALIDITY_DAYS; yields its roots file.
    Stopped by PID."""
    acme_port, mgmt_port = SHORT_PEBBLE_ACME + testenv.lane.index, SHORT_PEBBLE_MGMT + testenv.lane.index
    for port in (acme_port, mgmt_port):
        if _port_in_use(port):
            pytest.fail(f"port {port} is taken: the short-lived Pebble of this test cannot start", pytrace=False)
    listener = Path(testenv.pebble_ca).parent
    config = workdir / "pebble-short.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"0.0.0.0:{acme_port}",
                    "managementListenAddress": f"0.0.0.0:{mgmt_port}",
                    "certificate": str(listener / "cert.pem"),
                    "privateKey": str(listener / "key.pem"),
                    "httpPort": testenv.lane.http_port,
                    "tlsPort": testenv.lane.https_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                    "certificateValidityPeriod": VALIDITY_DAYS * 86400,
                }
            }
        )
    )
    log = workdir / "pebble-short.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["pebble", "-config", str(config), "-dnsserver", "127.0.0.1:8053"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )
    try:
        mgmt = f"https://localhost:{mgmt_port}"
        deadline = time.monotonic() + 30
        with httpx.Client(verify=ssl.create_default_context(cafile=str(listener / "cert.pem")), timeout=3) as client:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the short-lived Pebble exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
                try:
                    client.get(f"https://localhost:{acme_port}/dir").raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"the short-lived Pebble did not answer in 30 s:\n{log.read_text()[-2000:]}")
                    time.sleep(0.3)
            roots = workdir / "pebble-short-roots.pem"
            roots.write_text(
                client.get(f"{mgmt}/roots/0").text.strip()
                + "\n"
                + client.get(f"{mgmt}/intermediates/0").text.strip()
                + "\n"
            )
        yield roots
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_certificate_near_expiry(make_stack: Any, testenv: TestEnv, tmp_path: Path) -> None:
    with short_lived_pebble(testenv, tmp_path) as roots:
        stack = make_stack(
            APP,
            "smoke-expiring",
            acme={"ca_server": f"https://host.docker.internal:{SHORT_PEBBLE_ACME + testenv.lane.index}/dir"},
            smoke={"resolve": "127.0.0.1", "ca_file": str(roots)},
        )
        stack.ck("up", "--no-smoke")
        code, report = smoke_json(stack, "--wait", "60")
        # Inside the warn threshold (21 days) but outside the fail one (7): a warning does not fail smoke.
        assert code == 0, report
        expiry = by_name(report)["tls expiry"]
        assert expiry["status"] == "warn"
        assert re.fullmatch(r"expires \S+ \S+ UTC, in 9 days \(warn threshold: 21 days\)", expiry["detail"])
        assert "renewal is failing" in expiry["fix"]

        code, report = smoke_json(stack, "--cert-fail-days", "15", "--cert-warn-days", "30")
        assert code == 1
        expiry = by_name(report)["tls expiry"]
        assert expiry["status"] == "fail"
        assert re.fullmatch(r"expires \S+ \S+ UTC, in 9 days \(fail threshold: 15 days\)", expiry["detail"])
        stack.ck("down", "--delete-volumes")  # while its CA still runs
