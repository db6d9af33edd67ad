"""composekit/runtime/uvicorn_drain.py, run for real (uvicorn on 127.0.0.1, no Docker): after SIGTERM the process
keeps accepting new connections for --drain-seconds, then stops gracefully; a second signal stops it at once."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

RUNNER = str(resources.files("composekit.runtime").joinpath("uvicorn_drain.py"))

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int) -> int:
    # A new connection each time: what Traefik opens to a task it still lists.
    with httpx.Client(timeout=2) as client:
        return client.get(f"http://127.0.0.1:{port}/").status_code


# The drain asked for, and how long the test keeps asking during it: 1.5 s of margin, so that a request the loop starts
# just before its end still connects on a loaded machine (with a 2 s drain, one under a load average of 10 reached
# the socket after the listener had closed: connection refused).
DRAIN = 2.5
ASKING = 1.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    (tmp_path / "tinyapp.py").write_text(APP)
    port = _port()
    uvicorn_args = ["tinyapp:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        [sys.executable, RUNNER, "--drain-seconds", str(DRAIN), *uvicorn_args, "--timeout-graceful-shutdown", "5"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if _get(port) == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "uvicorn never answered"
            time.sleep(0.1)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_stopping_task_keeps_serving_for_the_drain_then_stops_cleanly(
    served: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = served
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    answered = 0
    while time.monotonic() - signalled < ASKING:
        assert _get(port) == 200  # plain uvicorn refuses new connections right after SIGTERM
        answered += 1
        time.sleep(0.02)
    # uvicorn >= 0.29 re-raises the signal it caught once it has shut down (as plain uvicorn does): -15.
    assert proc.wait(10) in (0, -signal.SIGTERM)
    stopped = time.monotonic() - signalled
    output = proc.stdout.read() if proc.stdout else ""
    assert answered > 5
    assert DRAIN <= stopped < DRAIN + 6, stopped
    assert f"composekit: signal 15: serving {DRAIN}s more while the proxy drops this task, then stopping" in output
    assert "Application shutdown complete" in output or "Finished server process" in output


def test_a_second_signal_during_the_drain_stops_at_once(served: tuple[subprocess.Popen[str], int]) -> None:
    proc, _ = served
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert time.monotonic() - signalled < 1.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: uvicorn_drain.py --drain-seconds N <uvicorn arguments...>"),
        (
            ["--drain-seconds", "soon", "app:app"],
            "usage: uvicorn_drain.py --drain-seconds N <uvicorn arguments...>: --drain-seconds expects a number of "
            "seconds, got 'soon'",
        ),
        (
            ["--drain-seconds", "-1", "app:app"],
            "usage: uvicorn_drain.py --drain-seconds N <uvicorn arguments...>: --drain-seconds expects 0 to 600 "
            "seconds, got '-1'",
        ),
    ],
)
def test_bad_arguments_are_refused_with_the_usage(args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, RUNNER, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == message
