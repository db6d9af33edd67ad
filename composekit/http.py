"""The one module that talks to a deployment over the network: httpx for HTTP, ssl for certificates.

Every request goes to an explicit address with the domain as Host header and TLS SNI, so a server can
be checked before DNS points at it (like curl's --resolve). Transport failures become HttpCheckError,
whose message names the URL, the address connected to and what went wrong.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from .errors import HttpCheckError, UserError

__all__ = ["Answer", "Endpoint", "HttpClient", "PeerCertificate", "Scheme", "resolve"]

Scheme = Literal["http", "https"]
_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
# OpenSSL's X509_V_FLAG_NO_CHECK_TIME, which the ssl module does not export: lets an expired
# certificate be decoded, so that `smoke` can say when it expired instead of only that it did.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000


def resolve(domain: str) -> list[str]:
    """The addresses ``domain`` resolves to (A and AAAA), in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(domain, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HttpCheckError(f"{domain} does not resolve: {exc.strerror}") from None
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Endpoint:
    """A domain as the outside sees it, reached at one address."""

    domain: str
    address: str
    http_port: int = 80
    https_port: int = 443

    def port(self, scheme: Scheme) -> int:
        return self.http_port if scheme == "http" else self.https_port

    def host(self, scheme: Scheme) -> str:
        """The Host header (and URL authority) a browser sends for this domain."""
        port = self.port(scheme)
        return self.domain if port == _DEFAULT_PORTS[scheme] else f"{self.domain}:{port}"

    def url(self, scheme: Scheme, path: str) -> str:
        """The public URL, as a user types it."""
        return f"{scheme}://{self.host(scheme)}{path}"

    def connect_url(self, scheme: Scheme, path: str) -> str:
        """The URL actually requested: the address, with the domain going in Host and SNI."""
        address = f"[{self.address}]" if ipaddress.ip_address(self.address).version == 6 else self.address
        return f"{scheme}://{address}:{self.port(scheme)}{path}"

    def where(self, scheme: Scheme) -> str:
        return f"{self.address} port {self.port(scheme)}"


@dataclass(frozen=True)
class Answer:
    """What a server answered to one GET."""

    url: str  # the public URL asked for
    status: int
    reason: str
    headers: dict[str, str]  # lowercase names; repeated headers joined with ", "
    text: str
    elapsed_ms: float

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


@dataclass(frozen=True)
class PeerCertificate:
    """The certificate a server presented for a domain, and whether it verified."""

    subject: str  # "CN=shop.example.com"; "" when the certificate has no subject
    issuer: str
    subject_cn: str | None
    issuer_cn: str | None
    dns_names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    verified: bool  # chain and name verified against the trust store
    verify_error: str | None  # OpenSSL's reason when they did not

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def _name(rdns: Any) -> tuple[str, str | None]:
    """ssl's ((("commonName", "x"),), ...) -> ("CN=x, O=y", "x")."""
    short = {"commonName": "CN", "organizationName": "O", "countryName": "C", "organizationalUnitName": "OU"}
    parts, cn = [], None
    for rdn in rdns or ():
        for key, value in rdn:
            parts.append(f"{short.get(key, key)}={value}")
            if key == "commonName" and cn is None:
                cn = str(value)
    return ", ".join(parts), cn


def _when(text: str) -> datetime:
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(text), tz=timezone.utc)


def _certificate(info: dict[str, Any], verified: bool, error: str | None) -> PeerCertificate:
    subject, subject_cn = _name(info.get("subject"))
    issuer, issuer_cn = _name(info.get("issuer"))
    return PeerCertificate(
        subject=subject,
        issuer=issuer,
        subject_cn=subject_cn,
        issuer_cn=issuer_cn,
        dns_names=tuple(str(v) for k, v in info.get("subjectAltName", ()) if k == "DNS"),
        not_before=_when(info["notBefore"]),
        not_after=_when(info["notAfter"]),
        verified=verified,
        verify_error=error,
    )


def _trust_context(ca_file: Path | None) -> ssl.SSLContext:
    if ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise UserError(
            f"CA file {ca_file}: cannot be loaded ({getattr(exc, 'strerror', None) or exc}); "
            "pass a PEM file with the root certificate(s) of the CA that issued the site's certificate"
        ) from None


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _decoding_context(der: bytes) -> ssl.SSLContext:
    """A context that trusts exactly this certificate, whatever its issuer, name or dates.

    The ssl module only decodes a certificate it has verified; trusting the leaf itself (partial chain)
    makes it decode any certificate without a third-party parser.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_flags = ssl.VerifyFlags(ssl.VERIFY_X509_PARTIAL_CHAIN | _X509_V_FLAG_NO_CHECK_TIME)
    context.load_verify_locations(cadata=der)
    return context


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    while exc.__cause__ is not None and not text:
        exc = exc.__cause__
        text = str(exc).strip()
    return text or type(exc).__name__


class HttpClient:
    """GET requests and TLS handshakes against one endpoint. Use as a context manager."""

    def __init__(self, endpoint: Endpoint, *, ca_file: Path | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.timeout = timeout
        self._trust = _trust_context(ca_file)
        self._transport = transport
        self._clients: dict[bool, httpx.Client] = {}

    @property
    def trust(self) -> str:
        return f"the CA file {self.ca_file}" if self.ca_file else "the system's trusted CAs"

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, verify: bool) -> httpx.Client:
        if verify not in self._clients:
            self._clients[verify] = httpx.Client(
                verify=self._trust if verify else False,
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
                transport=self._transport,
            )
        return self._clients[verify]

    def get(self, scheme: Scheme, path: str, *, verify: bool = True) -> Answer:
        """GET ``path``; ``verify=False`` skips certificate checks (to look past a bad certificate)."""
        ep = self.endpoint
        public = ep.url(scheme, path)
        extensions = {"sni_hostname": ep.domain} if scheme == "https" else {}
        start = time.perf_counter()
        try:
            response = self._client(verify).get(
                ep.connect_url(scheme, path), headers={"Host": ep.host(scheme)}, extensions=extensions
            )
        except httpx.TimeoutException:
            raise HttpCheckError(
                f"GET {public} (at {ep.where(scheme)}) got no answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise HttpCheckError(f"GET {public} (at {ep.where(scheme)}) failed: {_reason(exc)}") from None
        elapsed = (time.perf_counter() - start) * 1000
        headers: dict[str, str] = {}
        for key, value in response.headers.multi_items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return Answer(public, response.status_code, response.reason_phrase, headers, response.text, elapsed)

    def _handshake(self, context: ssl.SSLContext, binary: bool = False) -> Any:
        ep = self.endpoint
        try:
            with socket.create_connection((ep.address, ep.https_port), timeout=self.timeout) as raw:
                with context.wrap_socket(raw, server_hostname=ep.domain) as tls:
                    return tls.getpeercert(binary_form=binary)
        except ssl.SSLCertVerificationError:
            raise
        except ssl.SSLError as exc:
            raise HttpCheckError(
                f"TLS handshake with {ep.where('https')} for {ep.domain} failed: {exc.reason or exc}"
            ) from None
        except OSError as exc:
            raise HttpCheckError(
                f"cannot connect to {ep.where('https')} for {ep.domain}: {exc.strerror or _reason(exc)}"
            ) from None

    def certificate(self) -> PeerCertificate:
        """The certificate served for the domain, verified against the trust store when it can be."""
        try:
            return _certificate(self._handshake(self._trust), verified=True, error=None)
        except ssl.SSLCertVerificationError as exc:
            error = exc.verify_message or _reason(exc)
        der = self._handshake(_unverified_context(), binary=True)
        try:
            info = self._handshake(_decoding_context(der))
        except ssl.SSLCertVerificationError as exc:
            raise HttpCheckError(
                f"the certificate served for {self.endpoint.domain} does not verify ({error}) "
                f"and cannot be decoded ({exc.verify_message})"
            ) from None
        return _certificate(info, verified=False, error=error)
