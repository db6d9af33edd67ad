"""The one module that talks to a deployment over the network: httpx for HTTP, ssl + cryptography for certificates.

Every request goes to an explicit address with the domain as Host header and TLS SNI, so a server can
be checked before DNS points at it (like curl's --resolve). Transport failures become HttpCheckError,
whose message names the URL, the address connected to and what went wrong.
"""

from __future__ import annotations

import _ssl
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..errors import HttpCheckError, UserError

if TYPE_CHECKING:
    import httpx  # imported when a client is first made: the commands that send no request skip its ~80 ms

__all__ = ["Answer", "Endpoint", "HttpClient", "PeerCertificate", "Scheme", "resolve"]

Scheme = Literal["http", "https"]
_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
_ENCODING_DER: int = _ssl.ENCODING_DER  # for the private chain call of Python < 3.13


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
    """A domain as the outside sees it, reached at one address; or, with ``http_socket``/``https_socket``, through
    local Unix sockets forwarded to those ports of the server (an SSH connection's, when the server's address cannot
    be reached from here), ``address`` then only naming the server in messages."""

    domain: str
    address: str
    http_port: int = 80
    https_port: int = 443
    http_socket: str | None = None
    https_socket: str | None = None

    def port(self, scheme: Scheme) -> int:
        return self.http_port if scheme == "http" else self.https_port

    def socket(self, scheme: Scheme) -> str | None:
        return self.http_socket if scheme == "http" else self.https_socket

    def host(self, scheme: Scheme) -> str:
        """The Host header (and URL authority) a browser sends for this domain."""
        port = self.port(scheme)
        return self.domain if port == _DEFAULT_PORTS[scheme] else f"{self.domain}:{port}"

    def url(self, scheme: Scheme, path: str) -> str:
        """The public URL, as a user types it."""
        return f"{scheme}://{self.host(scheme)}{path}"

    def connect_url(self, scheme: Scheme, path: str) -> str:
        """The URL actually requested: the address, with the domain going in Host and SNI (through a forwarded
        socket, the URL's host is never looked up)."""
        if self.socket(scheme) is not None:
            return f"{scheme}://127.0.0.1:{self.port(scheme)}{path}"
        try:
            literal = ipaddress.ip_address(self.address.strip("[]"))
        except ValueError:
            return f"{scheme}://{self.address}:{self.port(scheme)}{path}"  # a name: the client says if it resolves
        address = f"[{literal}]" if literal.version == 6 else str(literal)
        return f"{scheme}://{address}:{self.port(scheme)}{path}"

    def where(self, scheme: Scheme) -> str:
        if self.socket(scheme) is not None:
            return f"{self.address} port {self.port(scheme)} (through SSH, at the server's 127.0.0.1)"
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
    not_after: datetime
    verified: bool  # chain and name verified against the trust store
    verify_error: str | None  # OpenSSL's reason when they did not

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    @classmethod
    def from_der(cls, der: bytes, *, verified: bool, verify_error: str | None) -> PeerCertificate:
        """Decode a DER certificate (cryptography's x509); ValueError when it is malformed."""
        cert = x509.load_der_x509_certificate(der)
        subject, subject_cn = _name(cert.subject)
        issuer, issuer_cn = _name(cert.issuer)
        return cls(
            subject=subject,
            issuer=issuer,
            subject_cn=subject_cn,
            issuer_cn=issuer_cn,
            dns_names=_dns_names(cert),
            not_after=cert.not_valid_after_utc,
            verified=verified,
            verify_error=verify_error,
        )


def _name(name: x509.Name) -> tuple[str, str | None]:
    """An x509 name in its certificate's order -> ("CN=x, O=y", "x")."""
    parts = [f"{attr.rfc4514_attribute_name}={_text(attr.value)}" for rdn in name.rdns for attr in rdn]
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return ", ".join(parts), _text(cns[0].value) if cns else None


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.DNSName))


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


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """The certificates the server sent (leaf first, DER), also after a handshake that failed verification.

    Public as SSLSocket.get_unverified_chain() from Python 3.13; the same call exists, private, since 3.10.
    """
    public: Callable[[], list[bytes] | None] | None = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return list(public() or [])
    sslobj: Any = getattr(tls, "_sslobj", None)
    chain = sslobj.get_unverified_chain() if sslobj is not None else None
    return [cert.public_bytes(_ENCODING_DER) for cert in chain or []]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    while exc.__cause__ is not None and not text:
        exc = exc.__cause__
        text = str(exc).strip()
    return text or type(exc).__name__


class HttpClient:
    """GET requests and TLS handshakes against one endpoint. Use as a context manager."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.timeout = timeout
        self._trust = _trust_context(ca_file)
        self._transport = transport
        self._clients: dict[tuple[bool, str | None], httpx.Client] = {}

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

    def _client(self, verify: bool, scheme: Scheme) -> httpx.Client:
        import httpx

        uds = self.endpoint.socket(scheme)
        key = (verify, uds)
        if key not in self._clients:
            trust: ssl.SSLContext | bool = self._trust if verify else False
            transport = self._transport
            if transport is None and uds is not None:
                transport = httpx.HTTPTransport(uds=uds, verify=trust)
            self._clients[key] = httpx.Client(
                verify=trust, timeout=self.timeout, follow_redirects=False, trust_env=False, transport=transport
            )
        return self._clients[key]

    def get(self, scheme: Scheme, path: str, *, verify: bool = True, headers: dict[str, str] | None = None) -> Answer:
        """GET ``path``; ``verify=False`` skips certificate checks (to look past a bad certificate)."""
        import httpx

        ep = self.endpoint
        public = ep.url(scheme, path)
        extensions = {"sni_hostname": ep.domain} if scheme == "https" else {}
        start = time.perf_counter()
        try:
            response = self._client(verify, scheme).get(
                ep.connect_url(scheme, path),
                headers={**(headers or {}), "Host": ep.host(scheme)},
                extensions=extensions,
            )
        except httpx.TimeoutException:
            raise HttpCheckError(
                f"GET {public} (at {ep.where(scheme)}) got no answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise HttpCheckError(f"GET {public} (at {ep.where(scheme)}) failed: {_reason(exc)}") from None
        elapsed = (time.perf_counter() - start) * 1000
        answered: dict[str, str] = {}
        for key, value in response.headers.multi_items():
            key = key.lower()
            answered[key] = f"{answered[key]}, {value}" if key in answered else value
        return Answer(public, response.status_code, response.reason_phrase, answered, response.text, elapsed)

    def _connect_https(self) -> socket.socket:
        ep = self.endpoint
        uds = ep.socket("https")
        if uds is None:
            return socket.create_connection((ep.address, ep.https_port), timeout=self.timeout)
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(self.timeout)
        try:
            raw.connect(uds)
        except OSError:
            raw.close()
            raise
        return raw

    def certificate(self) -> PeerCertificate:
        """The certificate served for the domain, from one handshake verified against the trust store.

        A handshake that fails verification has still received the server's chain: its leaf is decoded
        anyway, so that `smoke` can say what is wrong with it (expired, another name, Traefik's default).
        """
        ep = self.endpoint
        error: str | None = None
        try:
            with (
                self._connect_https() as raw,
                self._trust.wrap_socket(raw, server_hostname=ep.domain, do_handshake_on_connect=False) as tls,
            ):
                try:
                    tls.do_handshake()
                except ssl.SSLCertVerificationError as exc:
                    error = exc.verify_message or _reason(exc)
                chain = _unverified_chain(tls)
        except ssl.SSLError as exc:
            raise HttpCheckError(
                f"TLS handshake with {ep.where('https')} for {ep.domain} failed: {exc.reason or exc}"
            ) from None
        except OSError as exc:
            raise HttpCheckError(
                f"cannot connect to {ep.where('https')} for {ep.domain}: {exc.strerror or _reason(exc)}"
            ) from None
        try:
            return PeerCertificate.from_der(chain[0] if chain else b"", verified=error is None, verify_error=error)
        except ValueError as exc:
            raise HttpCheckError(f"the certificate served for {ep.domain} cannot be decoded: {exc}") from None
