"""The Docker socket proxy of mode: swarm: its filter policy as a table, its request parsing, and the proxy end to
end against a fake engine on a unix socket (keep-alive cannot smuggle a second request, service and task lists
lose the containers' environment)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from composekit.runtime import socket_proxy
from composekit.runtime.socket_proxy import (
    BadRequest,
    Request,
    has_body,
    judge,
    parse_head,
    upstream_head,
    without_environment,
)

CID = "3f4e1c0b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"

NODE = "x3p8r0l5k2m9q1w7e4t6y0u2i"
# What Traefik's Swarm provider calls (ServerVersion, ServiceList, NetworkList, TaskList, NodeInspect, /_ping).
ALLOWED_PATHS = [
    "/_ping",
    "/version",
    "/info",
    "/services",
    "/tasks",
    "/networks",
    "/nodes",
    f"/nodes/{NODE}",
    "/nodes/worker-1.example",
]
# Real API calls that must never get through, read or write.
DENIED_PATHS = [
    "/containers/create",
    "/containers/json",
    f"/containers/{CID}/json",
    f"/containers/{CID}/archive",
    f"/containers/{CID}/exec",
    f"/containers/{CID}/logs",
    f"/containers/{CID}/export",
    f"/containers/{CID}/attach/ws",
    "/images/json",
    "/images/create",
    "/exec/abc/start",
    "/volumes",
    "/secrets",
    f"/secrets/{NODE}",
    "/secrets/create",
    "/configs",
    f"/configs/{NODE}",
    "/configs/create",
    "/services/create",
    f"/services/{NODE}",
    f"/services/{NODE}/update",
    f"/services/{NODE}/logs",
    f"/tasks/{NODE}",
    f"/tasks/{NODE}/logs",
    f"/networks/{NODE}",
    "/networks/create",
    f"/nodes/{NODE}/update",
    "/events",
    "/swarm",
    "/swarm/unlockkey",
    "/swarm/join",
    "/plugins",
    "/build",
    "/session",
    "/system/df",
    "/distribution/x/json",
    "/",
    "",
    "/v1.41",
    "/services/",
    "/nodes/",
    "/_ping/",
    "/PING",
    "/Services",
]


@pytest.mark.parametrize("prefix", ["", "/v1.41", "/v1.24", "/v1.9"])
@pytest.mark.parametrize("path", ALLOWED_PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_allowed_reads(method: str, path: str, prefix: str) -> None:
    verdict = judge(method, prefix + path)
    assert (verdict.allowed, verdict.reason, verdict.path, verdict.upstream_target) == (
        True,
        "allowed",
        prefix + path,
        prefix + path,
    )


@pytest.mark.parametrize("prefix", ["", "/v1.41"])
@pytest.mark.parametrize("path", ALLOWED_PATHS)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "get", "head"])
def test_other_methods_on_allowed_paths_are_denied(method: str, path: str, prefix: str) -> None:
    assert judge(method, prefix + path).reason == "method not allowed"


@pytest.mark.parametrize("prefix", ["", "/v1.41"])
@pytest.mark.parametrize("path", DENIED_PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
def test_other_paths_are_denied(method: str, path: str, prefix: str) -> None:
    verdict = judge(method, prefix + path)
    assert not verdict.allowed
    assert verdict.upstream_target == ""


@pytest.mark.parametrize(
    "target",
    [
        "/v2.0/services",
        "/v1/services",
        "/v1.411/services",
        "/vx/services",
        "/v1.41/v1.41/services",
        "/v1.41.0/_ping",
    ],
)
def test_only_a_v1_nn_prefix(target: str) -> None:
    assert judge("GET", target).reason == "path not allowed"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/services/../secrets", "path traversal or empty segment"),
        ("/v1.41/services/../secrets", "path traversal or empty segment"),
        (f"/nodes/{NODE}/../../secrets", "path traversal or empty segment"),
        ("/secrets/../services", "path traversal or empty segment"),
        ("/./services", "path traversal or empty segment"),
        ("/nodes/..", "path traversal or empty segment"),
        ("//services", "path traversal or empty segment"),
        ("/v1.41//services", "path traversal or empty segment"),
        ("/services/..", "path traversal or empty segment"),
        ("/services%2F..%2Fsecrets", "bad characters in path"),
        ("/nodes/%2e%2e/secrets", "bad characters in path"),
        ("/nodes\\x", "bad characters in path"),
        ("/services;create", "bad characters in path"),
        ("/sërvices", "bad characters in path"),
        ("/nodes/.hidden", "path not allowed"),
        ("/nodes/-x", "path not allowed"),
        ("*", "bad request target"),
        ("services", "bad request target"),
        ("docker:2375/services", "bad request target"),
        ("/services#frag", "bad characters in path"),
        ("/services?a#frag", "bad query string"),
    ],
)
def test_traversal_encoding_and_odd_targets(target: str, reason: str) -> None:
    verdict = judge("GET", target)
    assert (verdict.allowed, verdict.reason) == (False, reason)


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        (
            "/v1.41/tasks?filters=%7B%22desired-state%22%3A%7B%22running%22%3Atrue%7D%7D",
            "/v1.41/tasks?filters=%7B%22desired-state%22%3A%7B%22running%22%3Atrue%7D%7D",
        ),
        ("/v1.41/networks?filters=%7B%22scope%22%3A%7B%22swarm%22%3Atrue%7D%7D", None),
        ("/_ping?", "/_ping"),
        # The query never changes which endpoint is reached: the path is judged alone.
        ("/services?x=/../secrets", "/services?x=/../secrets"),
    ],
)
def test_query_strings_are_forwarded_with_the_judged_path(target: str, forwarded: str | None) -> None:
    verdict = judge("GET", target)
    expected = forwarded if forwarded is not None else target
    assert (verdict.allowed, verdict.path, verdict.upstream_target) == (True, target.partition("?")[0], expected)


def test_a_query_cannot_turn_a_denied_path_into_an_allowed_one() -> None:
    assert judge("GET", "/secrets?/services").reason == "path not allowed"
    assert judge("POST", "/services?method=GET").reason == "method not allowed"


@pytest.mark.parametrize(
    ("target", "allowed", "forwarded"),
    [
        ("http://docker/v1.41/services?status=true", True, "/v1.41/services?status=true"),
        ("HTTP://docker:2375/_ping", True, "/_ping"),
        ("https://evil.example/tasks", True, "/tasks"),
        ("http://docker/secrets", False, ""),
        ("http://docker/services/../secrets", False, ""),
        ("http://docker", False, ""),
        ("http://docker/services#x", False, ""),
        ("http://[::1/services", False, ""),
        ("ftp://docker/services", False, ""),
    ],
)
def test_absolute_uri_targets_are_judged_by_their_path_and_forwarded_in_origin_form(
    target: str, allowed: bool, forwarded: str
) -> None:
    verdict = judge("GET", target)
    assert (verdict.allowed, verdict.upstream_target) == (allowed, forwarded)


def test_parse_head() -> None:
    raw = (
        b"GET /v1.41/services?status=true HTTP/1.1\r\nHost: socket-proxy:2375\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"
    )
    assert parse_head(raw) == Request(
        "GET",
        "/v1.41/services?status=true",
        "HTTP/1.1",
        (("Host", "socket-proxy:2375"), ("User-Agent", "Go-http-client/1.1")),
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"GET /_ping HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
        (b"GET /_ping\r\n\r\n", "malformed request line"),
        (b"GET  /_ping HTTP/1.1\r\n\r\n", "malformed request line"),
        (b"GET /_ping HTTP/1.1 x\r\n\r\n", "malformed request line"),
        (b"G(T /_ping HTTP/1.1\r\n\r\n", "malformed request line"),
        (b"GET /_ping HTTP/1.1\r\nNo colon here\r\n\r\n", "malformed header line"),
        (b"GET /_ping HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "malformed header line"),
        (b"GET /_ping HTTP/1.1\r\nBad Name: a\r\n\r\n", "malformed header line"),
        (b"GET /_ping HTTP/1.1\r\nX: a\nGET /containers/create HTTP/1.1\r\n\r\n", "malformed header line"),
        (b"GET /_ping HTTP/1.1\r\nX: \xff\r\n\r\n", "non-ASCII bytes in the request head"),
        (b"GET /_ping HTTP/1.1\r\n", "incomplete request head"),
        (b"GET /_ping HTTP/1.1\r\n" + b"X: y\r\n" * 65 + b"\r\n", "too many headers"),
        (b"GET /_ping HTTP/1.1\r\nX: " + b"a" * 16384 + b"\r\n\r\n", "request head too large"),
    ],
)
def test_parse_head_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_head(raw)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("header", "body"),
    [
        ("Content-Length: 5", True),
        ("Transfer-Encoding: chunked", True),
        ("transfer-encoding: identity", True),
        ("content-length: 1", True),
        ("Content-Length: 0", False),
        ("X-Content-Length: 5", False),
    ],
)
def test_a_request_body_is_detected(header: str, body: bool) -> None:
    assert has_body(parse_head(f"GET /_ping HTTP/1.1\r\n{header}\r\n\r\n".encode())) is body


def test_upstream_head_forces_connection_close_and_drops_hop_by_hop_headers() -> None:
    request = parse_head(
        b"GET http://docker/v1.41/tasks?filters=x HTTP/1.1\r\nHost: socket-proxy:2375\r\n"
        b"Connection: keep-alive, X-Secret-Hop\r\nKeep-Alive: timeout=5\r\nX-Secret-Hop: 1\r\n"
        b"Upgrade: tcp\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\nContent-Length: 0\r\n\r\n"
    )
    assert upstream_head(request, judge(request.method, request.target)) == (
        b"GET /v1.41/tasks?filters=x HTTP/1.1\r\nHost: docker\r\nUser-Agent: Go-http-client/1.1\r\n"
        b"Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )


# End to end against a fake engine ------------------------------------------------------------------

EngineHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeEngine:
    """Records every request head it receives; answers each connection once, then closes it."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []

    async def ok(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        try:  # anything more on this connection would be a request that bypassed the filter
            extra = await asyncio.wait_for(reader.read(65536), 0.3)
        except TimeoutError:
            extra = b""
        if extra:
            self.heads.append(extra)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


async def with_proxy(
    tmp_path: Path, handler: Callable[[FakeEngine], EngineHandler], client: Callable[[int, FakeEngine], Awaitable[None]]
) -> FakeEngine:
    engine = FakeEngine()
    sock = str(tmp_path / "docker.sock")
    upstream = await asyncio.start_unix_server(handler(engine), sock)
    server = await socket_proxy.serve("127.0.0.1", 0, sock)
    port = server.sockets[0].getsockname()[1]
    try:
        await asyncio.wait_for(client(port, engine), 20)
    finally:
        server.close()
        upstream.close()
    return engine


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # until the proxy closes
    writer.close()
    return answer


def test_keep_alive_cannot_smuggle_a_second_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers: list[bytes] = []

    async def client(port: int, engine: FakeEngine) -> None:
        answers.append(
            await exchange(
                port,
                b"GET /v1.41/networks HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
                b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            )
        )

    engine = asyncio.run(with_proxy(tmp_path, lambda e: e.ok, client))
    assert engine.heads == [b"GET /v1.41/networks HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"]
    assert answers == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"]
    assert capsys.readouterr().err == "socket-proxy: allow GET /v1.41/networks from 127.0.0.1 -> 200\n"


def test_denied_requests_never_reach_the_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers: list[bytes] = []

    async def client(port: int, engine: FakeEngine) -> None:
        answers.append(await exchange(port, b"POST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
        answers.append(await exchange(port, f"GET /containers/{CID}/archive?path=/etc HTTP/1.1\r\n\r\n".encode()))
        answers.append(await exchange(port, b"GET /nodes HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"))

    engine = asyncio.run(with_proxy(tmp_path, lambda e: e.ok, client))
    assert engine.heads == []
    assert answers[0] == (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 59\r\nConnection: close\r\n\r\n"
        b"forbidden by composekit's socket proxy: method not allowed\n"
    )
    assert answers[1].endswith(b"\r\n\r\nforbidden by composekit's socket proxy: path not allowed\n")
    assert answers[2].startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert capsys.readouterr().err.splitlines() == [
        "socket-proxy: deny POST /v1.41/containers/create from 127.0.0.1: method not allowed",
        f"socket-proxy: deny GET /containers/{CID}/archive from 127.0.0.1: path not allowed",
        "socket-proxy: deny GET /nodes from 127.0.0.1: a request body is not allowed",
    ]


def test_oversized_and_slow_request_heads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket_proxy, "HEAD_TIMEOUT", 0.3)
    answers: list[bytes] = []

    async def client(port: int, engine: FakeEngine) -> None:
        answers.append(await exchange(port, b"GET /_ping HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"))
        answers.append(await exchange(port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n"))  # never finished

    engine = asyncio.run(with_proxy(tmp_path, lambda e: e.ok, client))
    assert engine.heads == []
    assert answers[0].startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answers[1].startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_the_logged_path_never_carries_the_query() -> None:
    assert judge("GET", "services?token=s3cret").path == "services"
    assert judge("GET", "/images/json?token=s3cret").path == "/images/json"
    assert judge("GET", "http://u:pw@docker/containers/create?token=s3cret").path == "/containers/create"


# Service and task lists lose the containers' environment -------------------------------------------------

SERVICES = [
    {
        "ID": "svc1",
        "Spec": {
            "Name": "shop_app",
            "Labels": {"traefik.enable": "true"},
            "TaskTemplate": {"ContainerSpec": {"Image": "shop-app:r1", "Env": ["API_TOKEN=s3cret", "PATH=/usr/bin"]}},
            "EndpointSpec": {"Mode": "dnsrr"},
        },
        "PreviousSpec": {"Name": "shop_app", "TaskTemplate": {"ContainerSpec": {"Env": ["API_TOKEN=old-s3cret"]}}},
    },
    {"ID": "svc2", "Spec": {"Name": "shop_traefik", "TaskTemplate": {"ContainerSpec": {"Image": "traefik"}}}},
]
TASKS = [
    {
        "ID": "t1",
        "Slot": 1,
        "Spec": {"ContainerSpec": {"Env": ["API_TOKEN=s3cret"], "Labels": {"a": "b"}}},
        "Status": {"State": "running"},
        "NetworksAttachments": [{"Network": {"ID": "n1"}, "Addresses": ["10.0.1.5/24"]}],
    }
]


def without_env(doc: object) -> object:
    text = json.dumps(doc).replace('"API_TOKEN=s3cret", "PATH=/usr/bin"', "").replace('"API_TOKEN=s3cret"', "")
    return json.loads(text.replace('"API_TOKEN=old-s3cret"', ""))


def chunked(data: bytes, size: int = 100) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("doc", [SERVICES, TASKS], ids=["services", "tasks"])
@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
def test_lists_without_environment(framing: str, doc: object) -> None:
    body = json.dumps(doc).encode() + b"\n"
    head = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
    if framing == "chunked":
        raw = head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked(body)
    elif framing == "length":
        raw = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    else:
        raw = head + b"\r\n" + body
    answer = without_environment(raw)
    new_head, _, new_body = answer.partition(b"\r\n\r\n")
    assert json.loads(new_body) == without_env(doc)
    assert new_head == (
        b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(new_body)}\r\nConnection: close".encode()
    )
    assert b"s3cret" not in answer
    assert b"traefik.enable" in answer or b"10.0.1.5/24" in answer  # what Traefik reads is still there


def test_errors_pass_and_unreadable_answers_are_refused() -> None:
    missing = b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 30\r\n\r\n{"message":"not a swarm manager"}'
    assert without_environment(missing) == missing
    for raw, why in (
        (b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[{"', "^Unterminated string"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n[]", "^truncated chunked body$"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b", "^encoded response body$"),
        (b"HTTP/1.1 200 OK\r\n", "^incomplete response head$"),
    ):
        with pytest.raises(ValueError, match=why):
            without_environment(raw)


@pytest.mark.parametrize("path", ["/v1.41/services", "/tasks"])
def test_lists_through_the_proxy_have_no_environment(tmp_path: Path, path: str) -> None:
    answers: list[bytes] = []
    body = json.dumps(SERVICES).encode() + b"\n"

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 7))
        await writer.drain()
        writer.close()

    async def client(port: int, fake: FakeEngine) -> None:
        answers.append(await exchange(port, f"GET {path} HTTP/1.1\r\n\r\n".encode()))
        answers.append(await exchange(port, f"HEAD {path} HTTP/1.1\r\n\r\n".encode()))

    asyncio.run(with_proxy(tmp_path, lambda e: engine, client))
    assert b"s3cret" not in answers[0]
    assert json.loads(answers[0].partition(b"\r\n\r\n")[2])[0]["Spec"]["Labels"] == {"traefik.enable": "true"}
    assert answers[1] == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"  # HEAD: the head only


def test_other_answers_are_relayed_untouched(tmp_path: Path) -> None:
    answers: list[bytes] = []
    node = b'{"ID":"n1","Status":{"Addr":"10.0.0.2"},"Spec":{"Labels":{"Env":"kept"}}}'

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(node) + node)
        await writer.drain()
        writer.close()

    async def client(port: int, fake: FakeEngine) -> None:
        answers.append(await exchange(port, f"GET /v1.41/nodes/{NODE} HTTP/1.1\r\n\r\n".encode()))

    asyncio.run(with_proxy(tmp_path, lambda e: engine, client))
    assert answers == [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(node) + node]
