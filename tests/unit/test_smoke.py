"""`composekit smoke` without a deployment: httpx's MockTransport for HTTP, a loopback TLS server with
certificates made here for the certificate checks, and the report's table and JSON."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rich.console import Console

from composekit.cli.display import render_table
from composekit.config import SmokeCheck, parse_config
from composekit.errors import ConfigError, HttpCheckError, UserError
from composekit.verify.checks import Report, Status, render_json
from composekit.verify.http import Answer, Endpoint, HttpClient, PeerCertificate
from composekit.verify.smoke import SmokeOptions, parse_resolve, run_smoke, smoke
from composekit.verify.smoke_checks import (
    check_certificate,
    check_expiry,
    check_redirect,
    check_security_headers,
    check_server_leak,
)

DOMAIN = "shop.example.com"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
GOOD_HEADERS = {
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-type": "application/json",
}


# certificates and a TLS server ------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def issue(
    cn: str, names: list[str], *, days: float = 90, age: float = 1, issuer: Issued | None = None, ca: bool = False
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=age))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


@pytest.fixture
def accepted() -> dict[int, int]:
    """port -> connections the tls_server on that port accepted."""
    return {}


@pytest.fixture
def tls_server(tmp_path: Path, accepted: dict[int, int]) -> Iterator[Callable[..., int]]:
    """tls_server(leaf, *chain) -> port of a loopback TLS server presenting that certificate chain."""
    sockets: list[socket.socket] = []

    def start(leaf: Issued, *chain: Issued) -> int:
        cert_file, key_file = tmp_path / f"cert{len(sockets)}.pem", tmp_path / f"key{len(sockets)}.pem"
        cert_file.write_bytes(leaf.pem() + b"".join(c.pem() for c in chain))
        key_file.write_bytes(leaf.key_pem())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        listener = socket.create_server(("127.0.0.1", 0))
        sockets.append(listener)
        port = int(listener.getsockname()[1])
        accepted[port] = 0

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted[port] += 1
                try:
                    with context.wrap_socket(conn, server_side=True):
                        pass
                except (ssl.SSLError, OSError):
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return port

    yield start
    for s in sockets:
        s.close()


def served(port: int, ca: Issued | None, tmp_path: Path, domain: str = DOMAIN) -> PeerCertificate:
    ca_file = None
    if ca is not None:
        ca_file = tmp_path / "ca.pem"
        ca_file.write_bytes(ca.pem())
    with HttpClient(Endpoint(domain, "127.0.0.1", https_port=port), ca_file=ca_file, timeout=5) as client:
        return client.certificate()


# --resolve ------------------------------------------------------------------------------------------


def test_parse_resolve() -> None:
    assert parse_resolve("Shop.Example.com:203.0.113.7") == ("shop.example.com", "203.0.113.7")
    assert parse_resolve("shop.example.com:2001:db8::1") == ("shop.example.com", "2001:db8::1")
    assert parse_resolve("shop.example.com:[2001:db8::1]") == ("shop.example.com", "2001:db8::1")


@pytest.mark.parametrize("value", ["shop.example.com", "shop.example.com:", ":1.2.3.4", "shop.example.com:host"])
def test_parse_resolve_rejects(value: str) -> None:
    with pytest.raises(UserError) as info:
        parse_resolve(value)
    assert str(info.value) == (f'--resolve: expected DOMAIN:IP such as "shop.example.com:203.0.113.7", got "{value}"')


# the HTTP client ------------------------------------------------------------------------------------


def test_requests_go_to_the_address_with_host_and_sni() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], text="ok")

    endpoint = Endpoint(DOMAIN, "203.0.113.7", http_port=8080, https_port=443)
    with HttpClient(endpoint, transport=httpx.MockTransport(handler)) as client:
        http = client.get("http", "/health")
        https = client.get("https", "/health")
    assert str(seen[0].url) == "http://203.0.113.7:8080/health"
    assert seen[0].headers["host"] == "shop.example.com:8080"
    assert "sni_hostname" not in seen[0].extensions
    assert str(seen[1].url) == "https://203.0.113.7/health"
    assert seen[1].headers["host"] == "shop.example.com"
    assert seen[1].extensions["sni_hostname"] == DOMAIN
    assert http.url == "http://shop.example.com:8080/health"
    assert https.url == "https://shop.example.com/health"
    assert https.headers["set-cookie"] == "a=1, b=2"


def test_ipv6_address_is_bracketed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    with HttpClient(Endpoint(DOMAIN, "2001:db8::1"), transport=httpx.MockTransport(handler)) as client:
        client.get("https", "/")
    assert seen == ["https://[2001:db8::1]/"]


def test_transport_failure_names_url_and_address() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with (
        HttpClient(Endpoint(DOMAIN, "127.0.0.1"), transport=httpx.MockTransport(handler)) as client,
        pytest.raises(HttpCheckError) as info,
    ):
        client.get("http", "/health")
    assert str(info.value) == (
        "GET http://shop.example.com/health (at 127.0.0.1 port 80) failed: [Errno 111] Connection refused"
    )


def test_unreadable_ca_file(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        HttpClient(Endpoint(DOMAIN, "127.0.0.1"), ca_file=tmp_path / "missing.pem")
    assert str(info.value) == (
        f"CA file {tmp_path / 'missing.pem'}: cannot be loaded (No such file or directory); pass a PEM file with "
        "the root certificate(s) of the CA that issued the site's certificate"
    )


# redirect -------------------------------------------------------------------------------------------


def redirect_check(status: int, location: str | None, http_port: int = 80, https_port: int = 443) -> tuple[Status, str]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": location} if location else {})

    endpoint = Endpoint(DOMAIN, "127.0.0.1", http_port, https_port)
    with HttpClient(endpoint, transport=httpx.MockTransport(handler)) as client:
        result = check_redirect(client, "/health")
    return result.status, result.detail


def test_permanent_redirect_to_same_https_url_passes() -> None:
    assert redirect_check(301, "https://shop.example.com/health") == (
        Status.OK,
        "http://shop.example.com/health -> 301 Moved Permanently -> https://shop.example.com/health",
    )
    assert redirect_check(308, "https://shop.example.com:443/health")[0] is Status.OK
    assert redirect_check(301, "https://shop.example.com:8443/health", 8080, 8443)[0] is Status.OK


def test_temporary_redirect_fails() -> None:
    assert redirect_check(302, "https://shop.example.com/health") == (
        Status.FAIL,
        "http://shop.example.com/health -> 302 Found (a temporary redirect) to https://shop.example.com/health; "
        "browsers do not remember it",
    )


def test_no_redirect_fails() -> None:
    assert redirect_check(200, None) == (
        Status.FAIL,
        "http://shop.example.com/health answered 200 OK instead of redirecting to https://shop.example.com/health",
    )


@pytest.mark.parametrize(
    "location",
    [
        "http://shop.example.com/health",
        "https://other.example.com/health",
        "https://shop.example.com/",
        "https://shop.example.com/health?x=1",
    ],
)
def test_redirect_elsewhere_fails(location: str) -> None:
    status, detail = redirect_check(301, location)
    assert status is Status.FAIL
    assert detail.endswith(f"to {location}, expected https://shop.example.com/health")


# certificates ---------------------------------------------------------------------------------------


def test_verified_certificate(tls_server: Callable[..., int], tmp_path: Path) -> None:
    root = issue("Test Root", [], days=3650, ca=True)
    cert = served(tls_server(issue(DOMAIN, [DOMAIN], issuer=root)), root, tmp_path)
    assert cert.verified and cert.verify_error is None
    assert (cert.subject_cn, cert.issuer_cn, cert.dns_names) == (DOMAIN, "Test Root", (DOMAIN,))
    result = check_certificate(cert, DOMAIN, f"the CA file {tmp_path / 'ca.pem'}", NOW)
    assert (result.status, result.detail) == (
        Status.OK,
        f"issued by Test Root for {DOMAIN}; verifies against the CA file {tmp_path / 'ca.pem'}",
    )


def test_traefik_default_certificate_is_named(tls_server: Callable[..., int], tmp_path: Path) -> None:
    default = issue("TRAEFIK DEFAULT CERT", ["0b1e0f3c.4e2d.traefik.default"], days=365)
    cert = served(tls_server(default), None, tmp_path)
    assert not cert.verified and cert.self_signed
    result = check_certificate(cert, DOMAIN, "the system's trusted CAs", NOW)
    assert result.status is Status.FAIL
    assert result.detail == (
        "Traefik's self-signed default certificate (TRAEFIK DEFAULT CERT) is served for shop.example.com: "
        "Traefik has no certificate for this domain"
    )
    for cause in ("unreachable or blocked", "DNS", "rate limit", "acme.json", "composekit logs traefik"):
        assert cause in result.fix


def test_hostname_mismatch(tls_server: Callable[..., int], tmp_path: Path) -> None:
    root = issue("Test Root", [], days=3650, ca=True)
    cert = served(tls_server(issue("other", ["other.example.com"], issuer=root)), root, tmp_path)
    assert not cert.verified
    assert "Hostname mismatch" in (cert.verify_error or "")
    result = check_certificate(cert, DOMAIN, "x", NOW)
    assert (result.status, result.detail) == (
        Status.FAIL,
        "the certificate is for other.example.com, not shop.example.com (issued by Test Root for other.example.com)",
    )


def test_wildcard_covers_the_domain_but_untrusted_issuer_fails(tls_server: Callable[..., int], tmp_path: Path) -> None:
    root = issue("Private Root", [], days=3650, ca=True)
    cert = served(tls_server(issue("*.example.com", ["*.example.com"], issuer=root)), None, tmp_path)
    result = check_certificate(cert, DOMAIN, "the system's trusted CAs", NOW)
    assert result.status is Status.FAIL
    assert result.detail == (
        "issued by Private Root for *.example.com; does not verify against the system's trusted CAs: "
        "unable to get local issuer certificate"
    )
    assert "--ca-file" in result.fix


def test_staging_issuer_points_at_ca_server(tls_server: Callable[..., int], tmp_path: Path) -> None:
    root = issue("(STAGING) Counterfeit Cabbage R11", [], days=3650, ca=True)
    cert = served(tls_server(issue(DOMAIN, [DOMAIN], issuer=root)), None, tmp_path)
    result = check_certificate(cert, DOMAIN, "the system's trusted CAs", NOW)
    assert result.status is Status.FAIL
    assert result.fix.startswith("acme/ca_server is Let's Encrypt's staging CA")


def test_expired_certificate_is_decoded(tls_server: Callable[..., int], tmp_path: Path) -> None:
    root = issue("Test Root", [], days=3650, ca=True)
    cert = served(tls_server(issue(DOMAIN, [DOMAIN], issuer=root, age=100, days=-2)), root, tmp_path)
    assert not cert.verified and cert.verify_error == "certificate has expired"
    now = dt.datetime.now(dt.UTC)
    assert check_certificate(cert, DOMAIN, "x", now).detail.startswith("the certificate expired on ")
    assert check_expiry(cert, now, 21, 7).status is Status.FAIL


def test_one_handshake_whether_or_not_the_certificate_verifies(
    tls_server: Callable[..., int], accepted: dict[int, int], tmp_path: Path
) -> None:
    root = issue("Test Root", [], days=3650, ca=True)
    good = tls_server(issue(DOMAIN, [DOMAIN], issuer=root))
    expired = tls_server(issue(DOMAIN, [DOMAIN], issuer=root, age=100, days=-2))
    assert served(good, root, tmp_path).verified
    assert not served(expired, root, tmp_path).verified
    assert accepted == {good: 1, expired: 1}


def test_intermediate_sent_by_the_server_completes_the_chain(tls_server: Callable[..., int], tmp_path: Path) -> None:
    root = issue("Test Root", [], days=3650, ca=True)
    intermediate = issue("Test Intermediate", [], days=365, issuer=root, ca=True)
    port = tls_server(issue(DOMAIN, [DOMAIN], issuer=intermediate), intermediate)
    cert = served(port, root, tmp_path)
    assert (cert.verified, cert.issuer, cert.issuer_cn) == (True, "CN=Test Intermediate", "Test Intermediate")
    leaf_only = tls_server(issue(DOMAIN, [DOMAIN], issuer=intermediate))
    assert served(leaf_only, root, tmp_path).verify_error == "unable to get local issuer certificate"


def test_subject_and_issuer_keep_the_certificate_order(tls_server: Callable[..., int], tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shop"),
            x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=9))
        .sign(key, hashes.SHA256())
    )
    seen = served(tls_server(Issued(cert, key)), None, tmp_path)
    assert (seen.subject, seen.subject_cn, seen.dns_names) == (f"C=FR, O=Shop, CN={DOMAIN}", DOMAIN, ())
    assert seen.self_signed and seen.verify_error == "self-signed certificate"
    assert seen.not_after == cert.not_valid_after_utc


def test_undecodable_certificate(
    tls_server: Callable[..., int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = tls_server(issue(DOMAIN, [DOMAIN]))

    def refuse(der: bytes) -> x509.Certificate:
        raise ValueError("error parsing asn1 value")

    monkeypatch.setattr(x509, "load_der_x509_certificate", refuse)
    with pytest.raises(HttpCheckError) as info:
        served(port, None, tmp_path)
    assert str(info.value) == "the certificate served for shop.example.com cannot be decoded: error parsing asn1 value"


def test_nothing_listening(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(HttpCheckError) as info:
        served(port, None, tmp_path)
    assert str(info.value) == f"cannot connect to 127.0.0.1 port {port} for shop.example.com: Connection refused"


def certificate(days_left: float) -> PeerCertificate:
    return PeerCertificate("CN=x", "CN=ca", "x", "ca", ("x",), NOW + dt.timedelta(days=days_left), True, None)


@pytest.mark.parametrize(
    ("days_left", "status", "detail"),
    [
        (60, Status.OK, "expires 2026-07-31 12:00 UTC, in 60 days"),
        (21, Status.OK, "expires 2026-06-22 12:00 UTC, in 21 days"),
        (20.5, Status.WARN, "expires 2026-06-22 00:00 UTC, in 20 days (warn threshold: 21 days)"),
        (6, Status.FAIL, "expires 2026-06-07 12:00 UTC, in 6 days (fail threshold: 7 days)"),
        (0.5, Status.FAIL, "expires 2026-06-02 00:00 UTC, in 12.0 hours (fail threshold: 7 days)"),
        (-1, Status.FAIL, "expired on 2026-05-31 12:00 UTC"),
    ],
)
def test_expiry_thresholds(days_left: float, status: Status, detail: str) -> None:
    result = check_expiry(certificate(days_left), NOW, 21, 7)
    assert (result.status, result.detail) == (status, detail)
    assert (result.fix == "") == (status is Status.OK)


# headers --------------------------------------------------------------------------------------------


def answer(status: int = 200, headers: dict[str, str] | None = None, text: str = "{}") -> Answer:
    return Answer(
        "https://shop.example.com/health", status, "OK", dict(GOOD_HEADERS if headers is None else headers), text, 12.0
    )


def test_security_headers_present() -> None:
    assert check_security_headers(answer()).status is Status.OK


def test_security_headers_missing_are_listed() -> None:
    headers = {**GOOD_HEADERS, "x-frame-options": "SAMEORIGIN"}
    del headers["strict-transport-security"], headers["referrer-policy"]
    result = check_security_headers(answer(headers=headers))
    assert result.status is Status.FAIL
    assert result.detail == (
        "on https://shop.example.com/health: Strict-Transport-Security missing; X-Frame-Options is 'SAMEORIGIN', "
        "expected 'DENY'; Referrer-Policy missing"
    )
    assert (
        "security-headers middleware is not applied" in result.fix
        and "composekit.yml in the routes volume" in result.fix
    )


def test_hsts_needs_positive_max_age() -> None:
    result = check_security_headers(answer(headers={**GOOD_HEADERS, "strict-transport-security": "max-age=0"}))
    assert "Strict-Transport-Security has no positive max-age ('max-age=0')" in result.detail


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, Status.OK, "no X-Powered-By; no Server"),
        ({"server": "uvicorn"}, Status.OK, "no X-Powered-By; Server: uvicorn (no version)"),
        ({"server": "gunicorn/23.0.0"}, Status.FAIL, "https://shop.example.com/health sends Server: gunicorn/23.0.0"),
        ({"x-powered-by": "FastAPI"}, Status.FAIL, "https://shop.example.com/health sends X-Powered-By: FastAPI"),
    ],
)
def test_server_leak(headers: dict[str, str], status: Status, detail: str) -> None:
    result = check_server_leak(answer(headers=headers))
    assert (result.status, result.detail) == (status, detail)


# a whole run ----------------------------------------------------------------------------------------


class FakeClient(HttpClient):
    """The real client over a MockTransport, presenting a given certificate."""

    def __init__(
        self, endpoint: Endpoint, handler: Callable[[httpx.Request], httpx.Response], cert: PeerCertificate | Exception
    ) -> None:
        super().__init__(endpoint, transport=httpx.MockTransport(handler))
        self.cert = cert

    def certificate(self) -> PeerCertificate:
        if isinstance(self.cert, Exception):
            raise self.cert
        return self.cert


def options(**changes: object) -> SmokeOptions:
    base: dict[str, object] = {
        "domain": DOMAIN,
        "resolve": None,
        "http_port": 80,
        "https_port": 443,
        "ca_file": None,
        "health_path": "/health",
        "latency_ms": 2000,
        "cert_warn_days": 21,
        "cert_fail_days": 7,
        "checks": (),
        "timeout": 5.0,
    }
    return SmokeOptions(**{**base, **changes})  # type: ignore[arg-type]


def healthy_app(request: httpx.Request) -> httpx.Response:
    if request.url.scheme == "http":
        return httpx.Response(301, headers={"Location": f"https://{DOMAIN}{request.url.path}"})
    if request.url.path == "/health":
        return httpx.Response(200, headers=GOOD_HEADERS, json={"status": "ok"})
    if request.url.path == "/api/version":
        return httpx.Response(200, headers=GOOD_HEADERS, json={"app": {"version": "1.2"}, "tags": ["a"]})
    return httpx.Response(404, text="404 page not found\n")


def run(
    opts: SmokeOptions,
    handler: Callable[[httpx.Request], httpx.Response] = healthy_app,
    cert: PeerCertificate | Exception | None = None,
    addresses: list[str] | None = None,
) -> Report:
    good = certificate(400) if cert is None else cert
    return run_smoke(
        opts,
        connect=lambda ep: FakeClient(ep, handler, good),
        resolver=lambda domain: addresses if addresses is not None else ["203.0.113.7"],
        now=lambda: NOW,
    )


def statuses(report: Report) -> dict[str, str]:
    return {c.name: c.status.value for c in report.checks}


def test_healthy_deployment_passes() -> None:
    report = run(
        options(checks=(SmokeCheck(path="/api/version", contains="1.2", json_key="app.version"),)),
        addresses=["203.0.113.7", "2001:db8::7"],
    )
    assert statuses(report) == {
        "dns": "ok",
        "http -> https": "ok",
        "tls certificate": "ok",
        "tls expiry": "ok",
        "health /health": "ok",
        "check /api/version": "ok",
        "security headers": "ok",
        "no version leak": "ok",
        "address 2001:db8::7": "ok",
    }
    assert report.passed
    assert report.checks[0].detail == (
        "shop.example.com -> 203.0.113.7, 2001:db8::7 (checking 203.0.113.7; the others answer the health path below)"
    )
    assert report.checks[5].detail == "200, contains '1.2', has JSON key 'app.version'"
    assert report.checks[-1].detail == "AAAA record: https://shop.example.com/health answered 200"


def test_stale_aaaa_record_fails() -> None:
    def ipv4_only(request: httpx.Request) -> httpx.Response:
        if request.url.host == "2001:db8::7":
            raise httpx.ConnectError("[Errno 101] Network is unreachable")
        return healthy_app(request)

    report = run(options(), ipv4_only, addresses=["203.0.113.7", "2001:db8::7"])
    stale = report.checks[-1]
    assert (stale.name, stale.status, stale.detail) == (
        "address 2001:db8::7",
        Status.FAIL,
        "AAAA record: GET https://shop.example.com/health (at 2001:db8::7 port 443) failed: "
        "[Errno 101] Network is unreachable",
    )
    assert "forgotten AAAA record" in stale.fix


def test_dns_failure_stops_the_run() -> None:
    def nowhere(domain: str) -> list[str]:
        raise HttpCheckError(f"{domain} does not resolve: Name or service not known")

    report = run_smoke(options(), connect=lambda ep: pytest.fail("no connection expected"), resolver=nowhere)
    assert [(c.name, c.status) for c in report.checks] == [("dns", Status.FAIL)]
    assert report.checks[0].detail == (
        "shop.example.com does not resolve: Name or service not known; the remaining checks need an address"
    )
    assert "--resolve shop.example.com:SERVER_IP" in report.checks[0].fix
    assert not report.passed


def test_resolve_skips_dns() -> None:
    report = run(options(resolve="127.0.0.1"), addresses=[])
    assert report.checks[0].detail == "not consulted: requests go to 127.0.0.1 (--resolve)"
    assert report.subject == "https://shop.example.com/ at 127.0.0.1"


def test_default_certificate_still_checks_the_app_over_unverified_tls() -> None:
    default = PeerCertificate(
        "CN=TRAEFIK DEFAULT CERT",
        "CN=TRAEFIK DEFAULT CERT",
        "TRAEFIK DEFAULT CERT",
        "TRAEFIK DEFAULT CERT",
        ("x.traefik.default",),
        NOW + dt.timedelta(days=365),
        False,
        "self-signed certificate",
    )
    report = run(options(), cert=default)
    assert statuses(report) == {
        "dns": "ok",
        "http -> https": "ok",
        "tls certificate": "fail",
        "health /health": "ok",
        "security headers": "ok",
        "no version leak": "ok",
    }
    health = next(c for c in report.checks if c.name == "health /health")
    assert health.detail.endswith("(budget 2000 ms) (over unverified TLS: see the certificate check)")
    assert not report.passed


def test_health_500_is_caught() -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            return healthy_app(request)
        return httpx.Response(500, headers=GOOD_HEADERS, text="Internal Server Error")

    report = run(options(), failing)
    health = next(c for c in report.checks if c.name == "health /health")
    assert health.status is Status.FAIL
    assert health.detail.startswith("500 Internal Server Error from the app: 'Internal Server Error' in ")
    assert health.detail.endswith(" ms, expected 200")
    assert health.fix == "the app reports a failure on this path: `composekit logs app` shows why"


def test_traefik_404_names_the_missing_router() -> None:
    report = run(options(health_path="/missing"))
    health = next(c for c in report.checks if c.name == "health /missing")
    assert health.detail.startswith(
        "404 Not Found: Traefik's own 404 ('404 page not found'), no router matches Host(shop.example.com) in "
    )


def test_slow_health_fails_the_latency_budget() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            time.sleep(0.05)
        return healthy_app(request)

    report = run(options(latency_ms=10), slow)
    health = next(c for c in report.checks if c.name == "health /health")
    assert health.status is Status.FAIL
    assert health.detail.endswith(" ms, over the 10 ms budget")


@pytest.mark.parametrize(
    ("check", "detail"),
    [
        (
            SmokeCheck(path="/api/version", status=201),
            '200 OK: \'{"app":{"version":"1.2"},"tags":["a"]}\', expected 201',
        ),
        (
            SmokeCheck(path="/api/version", contains="2.0"),
            '200, but the body does not contain \'2.0\': \'{"app":{"version":"1.2"},"tags":["a"]}\'',
        ),
        (
            SmokeCheck(path="/api/version", json_key="app.build"),
            '200, but the JSON has no key \'app.build\': \'{"app":{"version":"1.2"},"tags":["a"]}\'',
        ),
    ],
)
def test_extra_check_failures(check: SmokeCheck, detail: str) -> None:
    report = run(options(checks=(check,)))
    result = next(c for c in report.checks if c.name == "check /api/version")
    assert (result.status, result.detail) == (Status.FAIL, detail)


def test_extra_check_json_list_index() -> None:
    report = run(options(checks=(SmokeCheck(path="/api/version", json_key="tags.0"),)))
    assert report.passed


def test_unreachable_https() -> None:
    refused = HttpCheckError("cannot connect to 203.0.113.7 port 443 for shop.example.com: Connection refused")

    def http_only(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return healthy_app(request)

    report = run(options(), http_only, cert=refused)
    assert statuses(report) == {"dns": "ok", "http -> https": "ok", "tls certificate": "fail", "health /health": "fail"}


def test_wait_retries_until_passing() -> None:
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 2:  # the whole first run: redirect and health
            return httpx.Response(502, text="Bad Gateway")
        return healthy_app(request)

    retries: list[Report] = []
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # a fake clock: the retry's pause passes at once
        slept.append(seconds)
        now[0] += seconds

    report = smoke(
        options(resolve="127.0.0.1"),
        wait=10,
        on_retry=retries.append,
        connect=lambda ep: FakeClient(ep, flaky, certificate(400)),
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert report.passed and len(retries) == 1
    assert slept == [1.0]  # one pause, of the first delay, between the failing run and the passing one


# options and output ---------------------------------------------------------------------------------


def test_options_from_config_and_flags(tmp_path: Path) -> None:
    config = parse_config(
        {
            "name": "shop",
            "domain": DOMAIN,
            "app": {"module": "app.main:app", "health_path": "/healthz"},
            "ports": {"http": 8080, "https": 8443},
            "smoke": {
                "latency_ms": 500,
                "cert_warn_days": 30,
                "cert_fail_days": 10,
                "resolve": "127.0.0.1",
                "ca_file": "ca.pem",
            },
        }
    )
    opts = SmokeOptions.from_config(config, tmp_path)
    assert (opts.domain, opts.resolve, opts.ca_file, opts.health_path) == (
        DOMAIN,
        "127.0.0.1",
        tmp_path / "ca.pem",
        "/healthz",
    )
    assert (opts.http_port, opts.https_port, opts.latency_ms, opts.cert_warn_days, opts.cert_fail_days) == (
        8080,
        8443,
        500,
        30,
        10,
    )
    flagged = SmokeOptions.from_config(
        config,
        tmp_path,
        resolve=("other.example.com", "10.0.0.1"),
        ca_file=Path("/x.pem"),
        cert_warn_days=5,
        cert_fail_days=2,
    )
    assert (flagged.domain, flagged.resolve, flagged.ca_file) == ("other.example.com", "10.0.0.1", Path("/x.pem"))
    assert (flagged.cert_warn_days, flagged.cert_fail_days) == (5, 2)
    with pytest.raises(UserError) as info:
        SmokeOptions.from_config(config, tmp_path, cert_fail_days=40)
    assert str(info.value) == (
        "the certificate fail threshold (40 days) exceeds the warn threshold (30 days); "
        "lower --cert-fail-days or raise --cert-warn-days"
    )


def test_smoke_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "name": "shop",
                "domain": DOMAIN,
                "app": {"module": "app.main:app"},
                "smoke": {"latency_ms": 0, "cert_warn_days": -1, "resolve": "shop", "checks": [{"path": "x"}]},
            }
        )
    assert info.value.problems == [
        "composekit.yaml: smoke/latency_ms: expected a positive number of milliseconds, got 0",
        "composekit.yaml: smoke/cert_warn_days: expected a number of days (0 or more), got -1",
        'composekit.yaml: smoke/checks/0/path: expected a URL path starting with "/", of letters, digits and '
        '"-._~!$&\'()*+,;=:@/?%" (percent-encode any other character, such as a space: "%20"), got "x"',
        'composekit.yaml: smoke/resolve: expected an IP address such as "203.0.113.7", got "shop"',
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "name": "shop",
                "domain": DOMAIN,
                "app": {"module": "app.main:app"},
                "smoke": {"cert_warn_days": 5, "cert_fail_days": 10},
            }
        )
    assert info.value.problems == ["composekit.yaml: smoke: cert_fail_days (10) must not exceed cert_warn_days (5)"]


def test_report_json_and_table() -> None:
    report = run(options(), cert=HttpCheckError("cannot connect"))
    data = json.loads(render_json(report))
    assert data["command"] == "smoke" and data["passed"] is False
    assert data["summary"] == {"ok": 5, "warn": 0, "fail": 1}
    assert data["checks"][2] == {
        "name": "tls certificate",
        "status": "fail",
        "detail": "cannot connect",
        "fix": "check Traefik is running (`composekit status`) and port 443 (ports/https) is open",
    }
    console = Console(record=True, width=200)
    render_table(report, console)
    text = console.export_text()
    assert "tls certificate" in text and "smoke FAILED: 5 ok, 0 warn, 1 fail" in text
