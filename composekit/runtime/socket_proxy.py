"""A filtering proxy in front of the Docker socket for Traefik's Swarm provider (mode: swarm), shipped as the
Swarm config ``socket_proxy.py`` of the stack's ``socket-proxy`` service (render/swarm.py).

The Swarm provider polls services, tasks, networks and nodes; the Docker API behind the socket also creates
privileged containers and services, reads secrets and configs, and execs into containers, so whoever holds the
socket holds the cluster. Traefik (internet-facing) talks to this proxy over an internal overlay network only
the two share; only this container mounts the socket, and only these read calls get through, each with or
without a ``/v1.NN`` prefix:

  GET/HEAD  /_ping  /version  /info  /services  /tasks  /networks  /nodes  /nodes/{id}

(what Traefik 3's Swarm provider calls: ServerVersion, ServiceList, NetworkList, TaskList, NodeInspect, and the
client's /_ping). Everything else answers 403: no POST, no container exec or create, no secret or config
content, no events. The service and task lists reach Traefik without the containers' environment
(``ContainerSpec.Env``, which holds what `docker stack deploy` read from the app's env_file): Traefik reads
labels, endpoints and task addresses, never the environment. Every request is judged: the proxy forwards one
request per upstream connection with ``Connection: close``, relays the response, then closes both sides, so
nothing that follows on a kept-alive connection reaches the engine unjudged. The request is forwarded in the
normalized origin form that was judged (an absolute-URI target loses its authority), without a body.

One line per request goes to stderr (method, path without query, peer, verdict); the container's own
healthcheck (an allowed ``/_ping`` from 127.0.0.1) is not logged. Standard library only; it imports
nothing from composekit.

Environment (optional): SOCKET_PROXY_PORT (2375), DOCKER_SOCKET (/var/run/docker.sock).
It runs on the configured Python image, which may be older than 3.11: hence ``asyncio.TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 64
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
RESPONSE_IDLE_TIMEOUT = 60.0  # between upstream reads
MAX_CONNECTIONS = 32
MAX_LIST_BYTES = 32 * 1024 * 1024  # a service or task list is read whole to filter it
METHODS = frozenset({"GET", "HEAD"})

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_VERSION = r"(?:/v1\.[0-9]{1,2})?"
# What Traefik 3's Swarm provider calls (pkg/provider/docker/pswarm.go), plus /info and the node list.
ALLOWED_PATH = re.compile(rf"{_VERSION}/(?:_ping|version|info|services|tasks|networks|nodes|nodes/{_ID})")
# Answers that carry containers' environments: read whole, filtered, then sent on.
_FILTERED = re.compile(rf"{_VERSION}/(?:services|tasks)")
_PATH_CHARS = re.compile(r"[A-Za-z0-9/_.-]*")
_QUERY_CHARS = re.compile(r"[!-~]*")  # printable ASCII, no spaces
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Hop-by-hop headers and what the proxy sets itself; never forwarded from the client.
_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "expect",
    }
)


class BadRequest(Exception):
    """The request head is not one this proxy forwards; the message says why (sent with a 400)."""


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    path: str  # the path judged (no query); for the log line
    upstream_target: str  # origin-form target forwarded when allowed
    reason: str


def judge(method: str, target: str) -> Verdict:
    """Whether ``method target`` may reach the Docker engine. Pure; the whole filter policy is here."""
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target[:7].lower() == "http://" or target[:8].lower() == "https://":
        try:
            parts = urlsplit(target)
        except ValueError:
            return Verdict(False, target, "", "bad request target")
        path, query = parts.path or "/", parts.query
        if "#" in target:
            return Verdict(False, path, "", "bad request target")
    else:
        return Verdict(False, target.partition("?")[0], "", "bad request target")
    if "#" in query or not _QUERY_CHARS.fullmatch(query):
        return Verdict(False, path, "", "bad query string")
    if not _PATH_CHARS.fullmatch(path):
        return Verdict(False, path, "", "bad characters in path")
    if any(seg in (".", "..", "") for seg in path.split("/")[1:]):
        return Verdict(False, path, "", "path traversal or empty segment")
    if method not in METHODS:
        return Verdict(False, path, "", "method not allowed")
    if not ALLOWED_PATH.fullmatch(path):
        return Verdict(False, path, "", "path not allowed")
    return Verdict(True, path, path + (f"?{query}" if query else ""), "allowed")


def parse_head(raw: bytes) -> Request:
    """A request head (up to and including the blank line) -> Request; BadRequest on anything unusual."""
    if len(raw) > MAX_HEAD_BYTES:
        raise BadRequest("request head too large")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("non-ASCII bytes in the request head") from None
    if not text.endswith("\r\n\r\n"):
        raise BadRequest("incomplete request head")
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise BadRequest("malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest("unsupported HTTP version")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest("too many headers")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            raise BadRequest("malformed header line")
        headers.append((name, value.strip(" \t")))
    return Request(method, target, version, tuple(headers))


def has_body(request: Request) -> bool:
    """Allowed calls have no body; one announced anyway could smuggle a second request behind the first."""
    return any(
        n.lower() == "transfer-encoding" or (n.lower() == "content-length" and v != "0") for n, v in request.headers
    )


def upstream_head(request: Request, verdict: Verdict) -> bytes:
    """The head sent to the engine: the judged target, the client's end-to-end headers, Connection: close."""
    listed = {
        token.strip().lower()
        for name, value in request.headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    lines = [f"{request.method} {verdict.upstream_target} HTTP/1.1", "Host: docker"]
    lines += [f"{n}: {v}" for n, v in request.headers if n.lower() not in _DROPPED and n.lower() not in listed]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, sep, body = body.partition(b"\r\n")
        if not sep:
            raise ValueError("truncated chunked body")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            return bytes(out)
        if len(body) < size + 2:
            raise ValueError("truncated chunked body")
        out += body[:size]
        body = body[size + 2 :]


def _drop_environment(doc: object) -> None:
    """Empty every ``ContainerSpec.Env`` (services: Spec and PreviousSpec .TaskTemplate; tasks: Spec), and a
    container's ``Config.Env``, wherever it is in the document."""
    if isinstance(doc, list):
        for item in doc:
            _drop_environment(item)
    elif isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("ContainerSpec", "Config") and isinstance(value, dict) and "Env" in value:
                value["Env"] = []
            _drop_environment(value)


def without_environment(raw: bytes, head_only: bool = False) -> bytes:
    """A whole upstream answer to a service or task list -> the same answer without any ``Env``.

    Error answers pass as they are; a 200 that cannot be read raises ValueError (nothing is forwarded).
    For a HEAD request only the head goes back, whatever the engine sent after it."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete response head")
    if head_only:
        return head + sep
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")
    if len(status) < 2 or status[1] != "200":
        return raw
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
    by_name = {n.lower(): v for n, v in headers}
    if by_name.get("content-encoding", "identity").lower() != "identity":
        raise ValueError("encoded response body")
    if by_name.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in by_name:
        body = body[: int(by_name["content-length"])]
    doc = json.loads(body)
    _drop_environment(doc)
    data = json.dumps(doc).encode() + b"\n"
    dropped = {"content-length", "transfer-encoding", "connection"}
    kept = [f"{n}: {v}" for n, v in headers if n.lower() not in dropped]
    new_head = "\r\n".join([lines[0], *kept, f"Content-Length: {len(data)}", "Connection: close"])
    return new_head.encode("latin-1") + b"\r\n\r\n" + data


def response(status: int, reason: str, body: str) -> bytes:
    data = (body + "\n").encode("ascii", "replace")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + data


def _printable(text: str, limit: int = 200) -> str:
    clean = "".join(c if " " < c <= "~" else "?" for c in text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def log(line: str) -> None:
    print(f"socket-proxy: {line}", file=sys.stderr, flush=True)


class Proxy:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.active = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self.active += 1
        try:
            if self.active > MAX_CONNECTIONS:
                log(f"deny connection from {host}: more than {MAX_CONNECTIONS} open connections")
                writer.write(response(503, "Service Unavailable", "too many connections"))
            else:
                await self._serve(reader, writer, host)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                log(f"deny from {host}: connection closed before the end of the request head")
            return
        except asyncio.LimitOverrunError:
            log(f"deny from {host}: request head larger than {MAX_HEAD_BYTES} bytes")
            writer.write(response(431, "Request Header Fields Too Large", "request head too large"))
            return
        except asyncio.TimeoutError:
            log(f"deny from {host}: no complete request head within {HEAD_TIMEOUT:g}s")
            writer.write(response(408, "Request Timeout", "request head timeout"))
            return
        try:
            request = parse_head(raw)
        except BadRequest as exc:
            log(f"deny from {host}: {exc}")
            writer.write(response(400, "Bad Request", str(exc)))
            return
        verdict = judge(request.method, request.target)
        what = f"{_printable(request.method, 20)} {_printable(verdict.path)} from {host}"
        if not verdict.allowed:
            log(f"deny {what}: {verdict.reason}")
            writer.write(response(403, "Forbidden", f"forbidden by composekit's socket proxy: {verdict.reason}"))
            return
        if has_body(request):
            log(f"deny {what}: a request body is not allowed")
            writer.write(response(400, "Bad Request", "a request body is not allowed"))
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path), CONNECT_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError) as exc:
            log(f"error {what}: cannot connect to {self.socket_path}: {exc}")
            writer.write(response(502, "Bad Gateway", "the Docker socket does not answer"))
            return
        try:
            up_writer.write(upstream_head(request, verdict))
            await up_writer.drain()
            quiet = host == "127.0.0.1" and verdict.path.endswith("/_ping")
            if _FILTERED.fullmatch(verdict.path):
                await self._filtered(writer, up_reader, what, head_only=request.method == "HEAD")
            else:
                await self._relay(reader, writer, up_reader, what, quiet)
        finally:
            up_writer.close()

    async def _filtered(
        self, writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader, what: str, head_only: bool
    ) -> None:
        """Read the whole (bounded) answer, drop the environment, send it on."""
        raw = b""
        try:
            while len(raw) <= MAX_LIST_BYTES:
                chunk = await asyncio.wait_for(up_reader.read(65536), RESPONSE_IDLE_TIMEOUT)
                if not chunk:
                    break
                raw += chunk
            else:
                raise ValueError(f"answer larger than {MAX_LIST_BYTES} bytes")
            answer = without_environment(raw, head_only)
        except (ValueError, asyncio.TimeoutError) as exc:
            log(f"error {what}: cannot filter the answer: {str(exc) or 'timeout'}")
            writer.write(response(502, "Bad Gateway", "the answer could not be filtered"))
            return
        status = answer.split(b" ", 2)[1].decode("ascii", "replace") if answer.count(b" ") >= 2 else "?"
        log(f"allow {what} -> {_printable(status, 3)}")
        writer.write(answer)
        await writer.drain()

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        what: str,
        quiet: bool,
    ) -> None:
        """Upstream -> client until either side closes. Bytes the client sends meanwhile are discarded."""

        async def drain_client() -> None:
            try:
                while await reader.read(4096):
                    pass
            except (ConnectionError, OSError):
                pass

        client_gone = asyncio.ensure_future(drain_client())
        first = True
        try:
            while True:
                read = asyncio.ensure_future(up_reader.read(65536))
                done, _ = await asyncio.wait(
                    {read, client_gone},
                    timeout=RESPONSE_IDLE_TIMEOUT,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if read not in done:
                    read.cancel()
                    if first:
                        log(f"error {what}: {'client closed' if done else 'no answer from the engine'}")
                    return
                chunk = read.result()
                if first and not chunk:
                    log(f"error {what}: the engine closed the connection without answering")
                    writer.write(response(502, "Bad Gateway", "the Docker engine did not answer"))
                    return
                if first:
                    first = False
                    status = chunk.split(b" ", 2)[1].decode("ascii", "replace") if chunk.count(b" ") >= 2 else "?"
                    if not quiet:
                        log(f"allow {what} -> {_printable(status, 3)}")
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()
        finally:
            client_gone.cancel()


async def serve(host: str, port: int, socket_path: str) -> asyncio.Server:
    proxy = Proxy(socket_path)
    return await asyncio.start_server(proxy.handle, host, port, limit=MAX_HEAD_BYTES)


async def _main() -> None:
    port = int(os.environ.get("SOCKET_PROXY_PORT", "2375"))
    socket_path = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
    server = await serve("0.0.0.0", port, socket_path)
    log(f"listening on :{port}, forwarding allowed read calls to {socket_path}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main())
