"""The checks of `composekit smoke`, one function each: what a live stack answers, judged with the fix for each failure.

Each takes what it needs (a client, a certificate, an answer) and returns a CheckResult; verify/smoke.py runs them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..config.sections import SmokeCheck
from ..errors import HttpCheckError
from .checks import CheckResult
from .http import Answer, Endpoint, PeerCertificate, Scheme

__all__ = [
    "DEFAULT_CAUSES",
    "TRAEFIK_DEFAULT_CN",
    "SmokeClient",
    "check_certificate",
    "check_expiry",
    "check_extra",
    "check_health",
    "check_other_address",
    "check_redirect",
    "check_security_headers",
    "check_server_leak",
]


TRAEFIK_DEFAULT_CN = "TRAEFIK DEFAULT CERT"
_TRAEFIK_404 = "404 page not found"
DEFAULT_CAUSES = (
    "Traefik could not obtain a certificate from the ACME CA. Likely causes: the CA is unreachable or "
    "blocked from the server (acme/ca_server, outbound HTTPS, firewall); the domain's DNS does not point at "
    "this server, so the HTTP-01 challenge fails (`composekit doctor`); the CA's rate limit (Let's Encrypt: "
    "5 certificates per identical set of names per week; a lost acme.json re-requests); acme.json unreadable "
    "or not mode 600. `composekit logs traefik` shows the ACME error"
)


class SmokeClient(Protocol):
    endpoint: Endpoint

    @property
    def trust(self) -> str: ...

    def get(self, scheme: Scheme, path: str, *, verify: bool = True) -> Answer: ...

    def certificate(self) -> PeerCertificate: ...

    def close(self) -> None: ...


def _same_https_url(location: str, want: Endpoint, path: str) -> bool:
    parts = urlsplit(location)
    ports = {None, 443, want.https_port}
    return (
        parts.scheme == "https"
        and (parts.hostname or "").lower() == want.domain
        and parts.port in ports
        and (parts.path or "/") == path
        and not parts.query
    )


def check_redirect(client: SmokeClient, path: str) -> CheckResult:
    """HTTP must answer with a permanent redirect (301/308) to the same URL over HTTPS."""
    name = "http -> https"
    ep = client.endpoint
    want = ep.url("https", path)
    try:
        answer = client.get("http", path)
    except HttpCheckError as exc:
        return CheckResult.fail(
            name,
            str(exc),
            f"open port {ep.http_port} (ports/http) to the server: Traefik answers there with the redirect, "
            "and ACME's HTTP-01 challenge needs it too",
        )
    seen = f"{answer.status} {answer.reason}".strip()
    location = answer.location
    if answer.status in (301, 308) and location and _same_https_url(location, ep, path):
        return CheckResult.ok(name, f"{answer.url} -> {seen} -> {location}")
    override_hint = (
        "composekit's Traefik redirects every HTTP request permanently (entryPoints/web/http/redirections in "
        "traefik.yml); a composekit.override.yaml that replaces Traefik's command or configuration drops it"
    )
    if answer.status in (301, 308):
        return CheckResult.fail(name, f"{answer.url} -> {seen} to {location}, expected {want}", override_hint)
    if answer.status in (302, 303, 307):
        return CheckResult.fail(
            name,
            f"{answer.url} -> {seen} (a temporary redirect) to {location}; browsers do not remember it",
            "make the redirect permanent (301/308): " + override_hint,
        )
    return CheckResult.fail(
        name, f"{answer.url} answered {seen} instead of redirecting to {want}", "restore the redirect: " + override_hint
    )


def _name_matches(pattern: str, domain: str) -> bool:
    pattern, domain = pattern.lower(), domain.lower()
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def _names(cert: PeerCertificate) -> str:
    return ", ".join(cert.dns_names) or (cert.subject_cn or "(no names)")


def check_certificate(cert: PeerCertificate, domain: str, trust: str, now: datetime) -> CheckResult:
    """Verified, for the domain, and not Traefik's self-signed fallback."""
    name = "tls certificate"
    if cert.subject_cn == TRAEFIK_DEFAULT_CN:
        return CheckResult.fail(
            name,
            f"Traefik's self-signed default certificate ({TRAEFIK_DEFAULT_CN}) is served for {domain}: "
            "Traefik has no certificate for this domain",
            DEFAULT_CAUSES,
        )
    issued = f"issued by {cert.issuer_cn or cert.issuer or 'an unnamed issuer'} for {_names(cert)}"
    if cert.verified:
        return CheckResult.ok(name, f"{issued}; verifies against {trust}")
    if not any(_name_matches(n, domain) for n in cert.dns_names):
        return CheckResult.fail(
            name,
            f"the certificate is for {_names(cert)}, not {domain} ({issued})",
            f"the server answers {domain} with another site's certificate: check that DNS (or --resolve) points "
            "at this stack's server and that composekit.yaml's domain is the one being checked",
        )
    if cert.not_after <= now:
        return CheckResult.fail(
            name,
            f"the certificate expired on {cert.not_after:%Y-%m-%d %H:%M} UTC ({issued})",
            "Traefik failed to renew it: " + DEFAULT_CAUSES,
        )
    if cert.self_signed:
        return CheckResult.fail(
            name,
            f"a self-signed certificate ({cert.subject}) does not verify against {trust}",
            "serve a certificate from a CA: remove any certificate the stack mounts by hand, so Traefik "
            "requests one over ACME",
        )
    staging = "STAGING" in (cert.issuer or "").upper()
    fix = (
        "acme/ca_server is Let's Encrypt's staging CA, whose certificates no browser trusts: set it to "
        "production (then delete acme.json so the certificate is requested again)"
        if staging
        else "if the site uses a private or test CA, pass its root with --ca-file (or smoke/ca_file); otherwise "
        "the server does not send the intermediate certificates, or the issuer is not publicly trusted"
    )
    return CheckResult.fail(name, f"{issued}; does not verify against {trust}: {cert.verify_error}", fix)


def check_expiry(cert: PeerCertificate, now: datetime, warn_days: int, fail_days: int) -> CheckResult:
    name = "tls expiry"
    left = cert.not_after - now
    days = left.total_seconds() / 86400
    when = f"{cert.not_after:%Y-%m-%d %H:%M} UTC"
    renew = (
        "Traefik renews certificates well before they expire (30 days for 90-day certificates), so renewal is "
        "failing: `composekit logs traefik` shows the ACME error; "
    )
    if days <= 0:
        return CheckResult.fail(name, f"expired on {when}", renew + DEFAULT_CAUSES)
    seen = f"expires {when}, in {_days(days)}"
    if days < fail_days:
        return CheckResult.fail(name, f"{seen} (fail threshold: {fail_days} days)", renew + "then restart Traefik")
    if days < warn_days:
        return CheckResult.warn(name, f"{seen} (warn threshold: {warn_days} days)", renew + "then restart Traefik")
    return CheckResult.ok(name, seen)


def _days(days: float) -> str:
    if days >= 2:
        return f"{int(days)} days"
    hours = days * 24
    return f"{hours:.1f} hours" if hours >= 1 else f"{hours * 60:.0f} minutes"


def _snippet(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _unverified_note(verify: bool) -> str:
    return "" if verify else " (over unverified TLS: see the certificate check)"


def _status_problem(answer: Answer, domain: str) -> tuple[str, str]:
    """What a non-2xx status most likely means, as (seen, fix)."""
    seen = f"{answer.status} {answer.reason}".strip()
    body = _snippet(answer.text)
    if answer.status == 404 and answer.text.strip() == _TRAEFIK_404:
        return (
            f"{seen}: Traefik's own 404 ({_TRAEFIK_404!r}), no router matches Host({domain})",
            "the app is not routed: its container is unhealthy or stopped (Traefik drops unhealthy containers), "
            "or the domain checked is not composekit.yaml's domain; `composekit status` shows the app's health",
        )
    if answer.status in (502, 503, 504):
        return (
            f"{seen}: Traefik could not get an answer from the app ({body!r})",
            "the app is down or not listening on app/port: `composekit status` and `composekit logs app`",
        )
    if answer.status >= 500:
        return (
            f"{seen} from the app: {body!r}",
            "the app reports a failure on this path: `composekit logs app` shows why",
        )
    return f"{seen}: {body!r}", "check the path exists in the app and answers without authentication"


def check_health(client: SmokeClient, path: str, latency_ms: int, verify: bool) -> tuple[CheckResult, Answer | None]:
    name = f"health {path}"
    try:
        answer = client.get("https", path, verify=verify)
    except HttpCheckError as exc:
        return CheckResult.fail(name, str(exc), "check Traefik and the app are running: `composekit status`"), None
    took = f"{answer.elapsed_ms:.0f} ms"
    if answer.status != 200:
        seen, fix = _status_problem(answer, client.endpoint.domain)
        return CheckResult.fail(name, f"{seen} in {took}, expected 200{_unverified_note(verify)}", fix), answer
    if answer.elapsed_ms > latency_ms:
        return CheckResult.fail(
            name,
            f"200 in {took}, over the {latency_ms} ms budget{_unverified_note(verify)}",
            "the app answers its health path slowly: look at its load and logs (`composekit logs app`), "
            "or raise smoke/latency_ms",
        ), answer
    return CheckResult.ok(name, f"200 in {took} (budget {latency_ms} ms){_unverified_note(verify)}"), answer


def _json_lookup(data: Any, key: str) -> bool:
    for part in key.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def check_extra(client: SmokeClient, check: SmokeCheck, verify: bool) -> CheckResult:
    """One entry of smoke/checks: expected status, and optionally body text and a JSON key (dotted path)."""
    name = f"check {check.path}"
    try:
        answer = client.get("https", check.path, verify=verify)
    except HttpCheckError as exc:
        return CheckResult.fail(name, str(exc), "check Traefik and the app are running: `composekit status`")
    note = _unverified_note(verify)
    if answer.status != check.status:
        problem, fix = _status_problem(answer, client.endpoint.domain)
        return CheckResult.fail(name, f"{problem}, expected {check.status}{note}", fix)
    seen = [str(answer.status)]
    if check.contains is not None:
        if check.contains not in answer.text:
            return CheckResult.fail(
                name,
                f"{answer.status}, but the body does not contain {check.contains!r}: {_snippet(answer.text)!r}",
                "the app answers but not with the expected content: check the deployed version and its data",
            )
        seen.append(f"contains {check.contains!r}")
    if check.json_key is not None:
        try:
            data = json.loads(answer.text)
        except ValueError:
            return CheckResult.fail(
                name,
                f"{answer.status}, but the body is not JSON: {_snippet(answer.text)!r}",
                "check the path returns JSON (content of smoke/checks json_key)",
            )
        if not _json_lookup(data, check.json_key):
            return CheckResult.fail(
                name,
                f"{answer.status}, but the JSON has no key {check.json_key!r}: {_snippet(answer.text)!r}",
                "check the deployed version of the app returns that key",
            )
        seen.append(f"has JSON key {check.json_key!r}")
    return CheckResult.ok(name, ", ".join(seen) + note)


_MIDDLEWARE_FIX = (
    "composekit's security-headers middleware is not applied to this response: the app's router in the routes "
    "file (composekit.yml in the routes volume, rewritten at every `composekit up`) must list it; run `composekit up` "
    "again, and check that no composekit.override.yaml replaces Traefik's configuration"
)


def check_security_headers(answer: Answer) -> CheckResult:
    """The headers composekit's Traefik middleware sets (render/traefik.py `traefik_dynamic`)."""
    name = "security headers"
    h = answer.headers
    problems: list[str] = []
    hsts = h.get("strict-transport-security")
    if hsts is None:
        problems.append("Strict-Transport-Security missing")
    else:
        max_age = next((p.split("=", 1)[1] for p in hsts.replace(" ", "").split(";") if p.startswith("max-age=")), "")
        if not max_age.isdigit() or int(max_age) <= 0:
            problems.append(f"Strict-Transport-Security has no positive max-age ({hsts!r})")
    if h.get("x-content-type-options", "").lower() != "nosniff":
        problems.append(f"X-Content-Type-Options is {h.get('x-content-type-options')!r}, expected 'nosniff'")
    if h.get("x-frame-options", "").upper() != "DENY":
        problems.append(f"X-Frame-Options is {h.get('x-frame-options')!r}, expected 'DENY'")
    if not h.get("referrer-policy"):
        problems.append("Referrer-Policy missing")
    if problems:
        return CheckResult.fail(name, f"on {answer.url}: " + "; ".join(problems), _MIDDLEWARE_FIX)
    return CheckResult.ok(
        name,
        f"Strict-Transport-Security: {hsts}; X-Content-Type-Options: nosniff; X-Frame-Options: DENY; "
        f"Referrer-Policy: {h['referrer-policy']}",
    )


def check_server_leak(answer: Answer) -> CheckResult:
    """No Server header with a version, no X-Powered-By."""
    name = "no version leak"
    leaks = []
    server = answer.headers.get("server")
    if server is not None and any(ch.isdigit() for ch in server):
        leaks.append(f"Server: {server}")
    if "x-powered-by" in answer.headers:
        leaks.append(f"X-Powered-By: {answer.headers['x-powered-by']}")
    if leaks:
        return CheckResult.fail(name, f"{answer.url} sends " + "; ".join(leaks), _MIDDLEWARE_FIX)
    return CheckResult.ok(name, "no X-Powered-By" + (f"; Server: {server} (no version)" if server else "; no Server"))


def check_other_address(client: SmokeClient, path: str, verify: bool) -> CheckResult:
    """Every A/AAAA record must serve the site: clients pick any of them (browsers prefer IPv6)."""
    ep = client.endpoint
    kind = "AAAA" if ":" in ep.address else "A"
    name = f"address {ep.address}"
    fix = (
        f"every {kind} record of {ep.domain} must reach this stack: remove the stale record, or make the "
        "server answer on that address (a forgotten AAAA record is the usual cause)"
    )
    try:
        answer = client.get("https", path, verify=verify)
    except HttpCheckError as exc:
        return CheckResult.fail(name, f"{kind} record: {exc}", fix)
    finally:
        client.close()
    if answer.status != 200:
        return CheckResult.fail(name, f"{kind} record: {answer.url} answered {answer.status} {answer.reason}", fix)
    return CheckResult.ok(name, f"{kind} record: {answer.url} answered 200{_unverified_note(verify)}")
