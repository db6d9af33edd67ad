"""Daemon restarts under load, shared by tests/integration/test_engine.py and benchmarks/daemon_restart.py.

Load goes to 127.0.0.1 only (Host and SNI = the stack's domain, trusting only Pebble's roots), bounded in
time and count. The engine is restarted by scripts/dockerd-restart.sh, which only touches the dockerd that
scripts/setup-env.sh started; callers hold the host ports lock meanwhile and restore the original engine.
"""

from __future__ import annotations

import collections
import os
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))
RESTART_SCRIPT = REPO / "scripts" / "dockerd-restart.sh"
# The settings for servers, as `composekit engine configure` writes them into an empty daemon.json.
LIVE_RESTORE = {"live-restore": True}
SERVER_SETTINGS = {"live-restore": True, "userland-proxy": False, "log-opts": {"max-size": "10m", "max-file": "3"}}


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0
    last_failure: float | None = None  # time.monotonic() of the last failed request
    last_failed_sent: float | None = None  # time.monotonic() when the last failed request was sent

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} x{n}" for k, n in self.errors.most_common(4))
        return f"{self.failed} of {self.sent} failed in {self.seconds:.1f} s" + (f" ({kinds})" if kinds else "")


# Seconds between the starts of one client thread's requests in the tests (50 a second a thread; 2-3 threads: one
# every 7-10 ms). A closed loop (pace 0) sent ~230 requests a second a thread through Traefik to gunicorn on the 2
# cores the deploy under test shares with them (35,000-47,000 in a one-minute Swarm rollout): the load's CPU slowed the
# deploys it watched and was a third of the integration tier's. A paced load still finds any gap in serving longer
# than a few requests' spacing; benchmarks (benchmarks/daemon_restart.py, redeploy_downtime.py) load in a closed loop.
PACE = 0.02


class HttpsLoad:
    """``threads`` clients sending GET requests in a loop until stop(), ``max_seconds`` or ``max_requests``, each
    starting a request at most every ``pace`` seconds (0: as fast as the answers come).

    A failed request (connection error, timeout, status other than 200) is counted; after one the thread
    pauses 10 ms, so a refused connection does not spin a core that five helpers share.
    """

    def __init__(
        self,
        domain: str,
        roots: Path,
        *,
        threads: int = 4,
        path: str = "/",
        port: int = 443,
        max_seconds: float = 90,
        max_requests: int = 200_000,
        pace: float = PACE,
    ) -> None:
        self.domain, self.roots, self.path, self.pace = domain, roots, path, pace
        self.url = f"https://127.0.0.1:{port}{path}"  # the lane's HTTPS port (tests/integration/conftest.py)
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._started = 0.0

    def __enter__(self) -> HttpsLoad:
        self._started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
        self.result.seconds = time.monotonic() - self._started
        return self.result

    def _judge(self, response: httpx.Response) -> str | None:
        """The error a response counts as, or None."""
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    def _counted(self, took: float) -> None:
        """Called under the lock for each counted request, with its duration."""

    def _run(self) -> None:
        verify = ssl.create_default_context(cafile=str(self.roots))
        deadline = self._started + self.max_seconds
        with httpx.Client(verify=verify, timeout=5) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                error = None
                began = time.monotonic()
                try:
                    response = client.get(
                        self.url,
                        headers={"Host": self.domain},
                        extensions={"sni_hostname": self.domain},
                    )
                    error = self._judge(response)
                except (httpx.HTTPError, ssl.SSLError, OSError, ValueError) as exc:
                    error = type(exc).__name__
                took = time.monotonic() - began
                with self._lock:
                    if self.result.sent >= self.max_requests:
                        return
                    self.result.sent += 1
                    self._counted(took)
                    if error:
                        self.result.failed += 1
                        self.result.errors[error] += 1
                        self.result.last_failure = time.monotonic()
                        self.result.last_failed_sent = max(began, self.result.last_failed_sent or began)
                self._wait_turn(began, error)

    def _wait_turn(self, began: float, error: str | None) -> None:
        """Until this thread's next request may start: ``pace`` after the last one began, 10 ms after a failure."""
        wait = max(began + self.pace - time.monotonic(), 0.01 if error else 0.0)
        if wait > 0:
            self._stop.wait(wait)


def restart_dockerd(daemon_json: Path | None, *, down: float = 0, timeout: float = 240) -> tuple[float, float]:
    """Stop and start the test environment's dockerd with ``daemon_json`` (None: its original command line).

    Returns (seconds to stop, seconds from start until `docker info` answered).
    """
    args = ["bash", str(RESTART_SCRIPT), "--down", str(down)]
    args += ["--daemon-json", str(daemon_json)] if daemon_json else ["--original"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    stop, start = done.stdout.split()
    return float(stop), float(start)


def restore_engine() -> None:
    """Back to the command line dockerd had before any restart here; fail loudly if it does not answer."""
    cmdline = STATE / "dockerd.original-cmdline"
    pid_file = STATE / "dockerd.pid"
    if cmdline.is_file() and pid_file.is_file():
        try:
            live = Path(f"/proc/{pid_file.read_text().strip()}/cmdline").read_bytes()
        except OSError:
            live = b""
        if live == cmdline.read_bytes() and docker_answers():
            return
    restart_dockerd(None)
    if not docker_answers():
        raise AssertionError("the Docker engine does not answer after restoring its original command line")


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def pebble_orders() -> int:
    """Orders Pebble accepted since it started (scripts/pebble.sh logs to $STATE/pebble/pebble.log)."""
    return (STATE / "pebble" / "pebble.log").read_text(errors="replace").count(" Added order ")


def serial(domain: str, roots: Path) -> str:
    """The serial number of the certificate served for ``domain`` on 127.0.0.1:443, verified against roots."""
    context = ssl.create_default_context(cafile=str(roots))
    with (
        socket.create_connection(("127.0.0.1", 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=domain) as tls,
    ):
        return str(tls.getpeercert()["serialNumber"])  # type: ignore[index]


def wait_serving(domain: str, roots: Path, *, since: float, timeout: float = 180, path: str = "/") -> float:
    """Poll HTTPS until it answers 200; the seconds from ``since`` (time.monotonic) to that answer."""
    verify = ssl.create_default_context(cafile=str(roots))
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while time.monotonic() < deadline:
        try:
            with httpx.Client(verify=verify, timeout=3) as client:
                response = client.get(
                    f"https://127.0.0.1{path}", headers={"Host": domain}, extensions={"sni_hostname": domain}
                )
            if response.status_code == 200:
                return time.monotonic() - since
            last = f"HTTP {response.status_code}"
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"https://{domain}{path} did not answer 200 within {timeout:.0f} s; last: {last}")
