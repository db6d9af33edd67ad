"""`composekit smoke`: prove a live deployment works, from the outside, over the network.

Checks, in order: DNS, the HTTP -> HTTPS permanent redirect, the TLS certificate (chain, name, not
Traefik's default, expiry), the health path (200 within the latency budget), the extra checks of
`smoke/checks`, the security headers composekit configures, that no server version leaks, and that
every other address the domain resolves to answers too (a stale AAAA record). When the certificate
does not verify, the HTTP checks still run over unverified TLS, so one run shows whether only the
certificate is wrong.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config.model import Config
from ..config.sections import SmokeCheck
from ..engine.wait import Poll, poll_until
from ..errors import HttpCheckError, UserError
from .checks import CheckResult, Report
from .http import Endpoint, HttpClient, resolve
from .smoke_checks import (
    TRAEFIK_DEFAULT_CN,
    SmokeClient,
    check_certificate,
    check_expiry,
    check_extra,
    check_health,
    check_other_address,
    check_redirect,
    check_security_headers,
    check_server_leak,
)

__all__ = ["SmokeOptions", "parse_resolve", "run_smoke", "smoke"]


@dataclass(frozen=True)
class SmokeOptions:
    domain: str
    resolve: str | None  # connect here instead of resolving the domain
    http_port: int
    https_port: int
    ca_file: Path | None
    health_path: str
    latency_ms: int
    cert_warn_days: int
    cert_fail_days: int
    checks: tuple[SmokeCheck, ...] = ()
    timeout: float = 10.0
    # The config's other domains (each: its certificate and health path) and its www redirects (from, to).
    also: tuple[str, ...] = ()
    redirects: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(
        cls,
        config: Config,
        root: Path,
        *,
        resolve: tuple[str, str] | None = None,
        ca_file: Path | None = None,
        cert_warn_days: int | None = None,
        cert_fail_days: int | None = None,
        timeout: float = 10.0,
    ) -> SmokeOptions:
        """Options from the config; flags win. ``resolve`` is (domain, ip), and its domain is the one checked."""
        smoke_cfg = config.smoke
        domain, address = resolve if resolve else (config.domain, smoke_cfg.resolve)
        if ca_file is None and smoke_cfg.ca_file is not None:
            ca_file = Path(smoke_cfg.ca_file) if Path(smoke_cfg.ca_file).is_absolute() else root / smoke_cfg.ca_file
        warn = smoke_cfg.cert_warn_days if cert_warn_days is None else cert_warn_days
        fail = smoke_cfg.cert_fail_days if cert_fail_days is None else cert_fail_days
        if fail > warn:
            raise UserError(
                f"the certificate fail threshold ({fail} days) exceeds the warn threshold ({warn} days); "
                "lower --cert-fail-days or raise --cert-warn-days"
            )
        return cls(
            domain=domain,
            resolve=address,
            http_port=config.ports.http,
            https_port=config.ports.https,
            ca_file=ca_file,
            health_path=config.app.health_path,
            latency_ms=smoke_cfg.latency_ms,
            cert_warn_days=warn,
            cert_fail_days=fail,
            checks=smoke_cfg.checks,
            timeout=timeout,
            also=tuple(d for d in config.domains if d != domain),
            redirects=tuple(config.www_redirects()),
        )


def parse_resolve(value: str) -> tuple[str, str]:
    """``DOMAIN:IP`` (IPv6 with or without brackets) -> (domain, ip)."""
    domain, _, address = value.partition(":")
    try:
        ip = str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        ip = ""
    if not domain or not ip:
        raise UserError(f'--resolve: expected DOMAIN:IP such as "shop.example.com:203.0.113.7", got "{value}"')
    return domain.lower(), ip


# the run --------------------------------------------------------------------------------------------

ClientFactory = Callable[[Endpoint], SmokeClient]
Resolver = Callable[[str], list[str]]


def run_smoke(
    opts: SmokeOptions,
    *,
    connect: ClientFactory | None = None,
    resolver: Resolver = resolve,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Run every check once."""
    results: list[CheckResult] = []
    subject = f"https://{opts.domain}" + ("" if opts.https_port == 443 else f":{opts.https_port}") + "/"

    def report(address: str | None) -> Report:
        context: dict[str, Any] = {"domain": opts.domain, "address": address}
        if opts.ca_file is not None:
            context["ca_file"] = str(opts.ca_file)
        at = f" at {address}" if address and opts.resolve else ""
        return Report("smoke", subject + at, tuple(results), context)

    others: list[str] = []
    if opts.resolve is not None:
        address = opts.resolve
        results.append(CheckResult.ok("dns", f"not consulted: requests go to {address} (--resolve)"))
    else:
        try:
            addresses = resolver(opts.domain)
        except HttpCheckError as exc:
            results.append(
                CheckResult.fail(
                    "dns",
                    f"{exc}; the remaining checks need an address",
                    f"create an A (and/or AAAA) record for {opts.domain} pointing at the server; to check the server "
                    f"before DNS is switched, pass --resolve {opts.domain}:SERVER_IP",
                )
            )
            return report(None)
        address, others = addresses[0], addresses[1:]
        more = f" (checking {address}; the others answer the health path below)" if others else ""
        results.append(CheckResult.ok("dns", f"{opts.domain} -> {', '.join(addresses)}{more}"))

    endpoint = Endpoint(opts.domain, address, opts.http_port, opts.https_port)
    make: ClientFactory = connect or (lambda ep: HttpClient(ep, ca_file=opts.ca_file, timeout=opts.timeout))
    client = make(endpoint)
    verified = False
    try:
        results.append(check_redirect(client, opts.health_path))
        try:
            cert = client.certificate()
        except HttpCheckError as exc:
            results.append(
                CheckResult.fail(
                    "tls certificate",
                    str(exc),
                    f"check Traefik is running (`composekit status`) and port {opts.https_port} (ports/https) is open",
                )
            )
        else:
            checked_at = now()
            results.append(check_certificate(cert, opts.domain, client.trust, checked_at))
            verified = cert.verified
            if cert.subject_cn != TRAEFIK_DEFAULT_CN:
                results.append(check_expiry(cert, checked_at, opts.cert_warn_days, opts.cert_fail_days))
        health, answer = check_health(client, opts.health_path, opts.latency_ms, verified)
        results.append(health)
        for extra in opts.checks:
            results.append(check_extra(client, extra, verified))
        if answer is not None:
            results.append(check_security_headers(answer))
            results.append(check_server_leak(answer))
    finally:
        client.close()
    for other in others:
        results.append(
            check_other_address(
                make(Endpoint(opts.domain, other, opts.http_port, opts.https_port)), opts.health_path, verified
            )
        )
    for domain in opts.also:
        results.extend(_other_domain(opts, make, domain, address, now))
    for source, target in opts.redirects:
        results.append(_www_redirect(opts, make, source, target, address))
    return report(address)


def _named(result: CheckResult, domain: str) -> CheckResult:
    return dataclasses.replace(result, name=f"{result.name} ({domain})")


def _other_domain(
    opts: SmokeOptions, make: ClientFactory, domain: str, address: str, now: Callable[[], datetime]
) -> list[CheckResult]:
    """Another domain of the app (`domain` as a list), at the same server: its own certificate and the health path."""
    client = make(Endpoint(domain, address, opts.http_port, opts.https_port))
    try:
        try:
            cert = client.certificate()
        except HttpCheckError as exc:
            return [CheckResult.fail(f"tls certificate ({domain})", str(exc), "check Traefik's logs for its router")]
        found = [_named(check_certificate(cert, domain, client.trust, now()), domain)]
        health, _ = check_health(client, opts.health_path, opts.latency_ms, cert.verified)
        return [*found, _named(health, domain)]
    finally:
        client.close()


def _www_redirect(opts: SmokeOptions, make: ClientFactory, source: str, target: str, address: str) -> CheckResult:
    """The www counterpart answers a permanent redirect to the same path on the listed domain (`www`)."""
    name = f"www redirect ({source})"
    client = make(Endpoint(source, address, opts.http_port, opts.https_port))
    port = "" if opts.https_port == 443 else f":{opts.https_port}"
    want = f"https://{target}{port}{opts.health_path}"
    try:
        answer = client.get("https", opts.health_path, verify=False)
    except HttpCheckError as exc:
        return CheckResult.fail(name, str(exc), f"check that {source} resolves to the server and Traefik routes it")
    finally:
        client.close()
    location = answer.headers.get("location", "")
    if answer.status in (301, 308) and location == want:
        return CheckResult.ok(name, f"HTTP {answer.status} -> {location}")
    return CheckResult.fail(
        name,
        f"expected a permanent redirect (301/308) to {want}, got HTTP {answer.status} {location}".rstrip(),
        "run `composekit up` so that the routes file carries the www redirect",
    )


def smoke(
    opts: SmokeOptions,
    *,
    wait: float = 0,
    on_retry: Callable[[Report], None] = lambda _: None,
    connect: ClientFactory | None = None,
    resolver: Resolver = resolve,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Run the checks; with ``wait``, repeat until they pass or ``wait`` seconds are over (by ``clock``, pausing
    with ``sleep``).

    Right after a deploy Traefik needs a few seconds to get its certificate, so `up` waits.
    Returns the last report: the one that passed, or the last failing one.
    """

    deadline = clock() + wait

    def observe() -> Poll[Report]:
        report = run_smoke(opts, connect=connect, resolver=resolver)
        if not report.passed and clock() < deadline:
            on_retry(report)
        return Poll(report, report.passed)

    seen, _ = poll_until(observe, wait, first_delay=1.0, max_delay=5.0, clock=clock, sleep=sleep)
    return seen.value
