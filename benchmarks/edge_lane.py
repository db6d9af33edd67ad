"""What benchmarks/multi_app.py and benchmarks/https_hop.py share: small FastAPI apps with `edge: shared` deployed by
composekit's own CLI against the test environment on one lane's ports (lane 1 by default: 1080/1443, its own Pebble)
holding the edge lock and the lane's lock (the engine has one shared edge: the edge tests of any lane create and
remove it, holding the same edge lock),
container memory and CPU read from the engine's cgroups (v1 or v2), a light HTTPS load to 127.0.0.1, and the
clean-up of exactly what a run created (its apps, and the edge if it created it).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))
EDGE_PROJECT = "composekit-edge"

MAIN = """\
import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/")
def root() -> dict[str, str]:
    return {"app": "NAME"}


@app.get("/work/{microseconds}")
def work(microseconds: int) -> dict[str, str]:
    # An endpoint that does real work: this many microseconds of the worker's own CPU (thread time, so time spent
    # waiting for a core does not count), then the same answer as /.
    deadline = time.thread_time() + microseconds / 1e6
    while time.thread_time() < deadline:
        pass
    return {"app": "NAME"}
"""


def log(message: str) -> None:
    sys.stderr.write(f"bench {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def run(argv: list[str], cwd: Path = REPO, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}:\n{(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


def lane_arguments(parser: argparse.ArgumentParser) -> None:
    """The lane: ports the edge publishes, the Pebble validating there, and the lock its tests take."""
    parser.add_argument("--http-port", type=int, default=1080)
    parser.add_argument("--https-port", type=int, default=1443)
    parser.add_argument("--pebble-lane", type=int, default=1, help="scripts/pebble.sh PEBBLE_LANE (ACME on 14000+N)")
    parser.add_argument(
        "--lock",
        action="append",
        help="a lock file to hold (repeatable; default: the edge lock, then the lock of --pebble-lane's lane, as "
        "the integration tier's edge modules take them: the engine has one shared edge, which they create and "
        "remove)",
    )
    parser.add_argument("--lock-timeout", type=float, default=1800)
    parser.add_argument("--ca-file", help="trust these roots for HTTPS (default: the lane's Pebble's current roots)")


EDGE_LOCK = "/tmp/composekit-integration-edge.lock"  # tests/integration/lanes.py's edge_lock_file()


def default_locks(lane: int) -> list[str]:
    """The edge lock, then lane ``lane``'s (tests/integration/lanes.py's Lane.lock_file), in the order the integration
    tier's edge modules take them."""
    own = "/tmp/composekit-integration.lock" if lane == 0 else f"/tmp/composekit-integration-lane{lane}.lock"
    return [EDGE_LOCK, own]


@contextmanager
def lane_lock(paths: list[str] | None, timeout: float, lane: int = 1) -> Iterator[None]:
    """Hold ``paths`` (default: default_locks(lane)), taken one after the other in that order, until the end."""
    with ExitStack() as stack:
        until = time.monotonic() + timeout
        for path in paths or default_locks(lane):
            lock = stack.enter_context(open(path, "a"))
            log(f"waiting for {path}")
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > until:
                        raise SystemExit(f"{path} still held after {timeout:g}s; nothing was started") from None
                    time.sleep(1)
            log(f"holding {path}")
        yield


@dataclass(frozen=True)
class Lane:
    http_port: int
    https_port: int
    acme_dir: str
    pebble_ca: str
    roots: Path
    python_image: str
    traefik_image: str

    @classmethod
    def start(cls, args: argparse.Namespace) -> Lane:
        """Start the lane's Pebble (scripts/pebble.sh, a no-op when it runs) and read the test environment."""
        env = dict(line.split("=", 1) for line in (STATE / "env").read_text().split())
        pebble = {"PEBBLE_LANE": str(args.pebble_lane)}
        run(["bash", str(REPO / "scripts" / "pebble.sh"), "start"], env=pebble)
        roots = args.ca_file or run(["bash", str(REPO / "scripts" / "pebble.sh"), "roots"], env=pebble).split()[-1]
        return cls(
            http_port=args.http_port,
            https_port=args.https_port,
            acme_dir=env["COMPOSEKIT_TEST_ACME_DIR"].replace(":14000/", f":{14000 + args.pebble_lane}/"),
            pebble_ca=env["COMPOSEKIT_TEST_PEBBLE_CA"],
            roots=Path(roots),
            python_image=env["COMPOSEKIT_TEST_PYTHON_IMAGE"],
            traefik_image=env["COMPOSEKIT_TEST_TRAEFIK_IMAGE"],
        )

    def overlay(self) -> dict[str, Any]:
        return {
            "acme": {"ca_server": self.acme_dir, "ca_certificates": [self.pebble_ca]},
            "images": {"python": self.python_image, "traefik": self.traefik_image},
            "ports": {"http": self.http_port, "https": self.https_port},
            "smoke": {"resolve": "127.0.0.1", "ca_file": str(self.roots)},
        }


@dataclass
class BenchApp:
    dir: Path
    name: str
    lane: Lane

    @property
    def domain(self) -> str:
        return f"{self.name}.composekit.test"

    def ck(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real CLI of this worktree (PYTHONPATH = the repository), as a user runs it."""
        cmd = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml", *args]
        done = subprocess.run(
            cmd,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if check and done.returncode != 0:
            raise SystemExit(
                f"composekit {' '.join(args)} of {self.name} exited {done.returncode}:\n{done.stderr[-4000:]}"
            )
        return done

    def get(self, timeout: float = 10) -> httpx.Response:
        verify = ssl.create_default_context(cafile=str(self.lane.roots))
        with httpx.Client(verify=verify, timeout=timeout) as client:
            return client.get(
                f"https://127.0.0.1:{self.lane.https_port}/",
                headers={"Host": self.domain},
                extensions={"sni_hostname": self.domain},
            )

    def wait_serving(self, timeout: float = 90) -> float:
        """Seconds until the app answers 200 over HTTPS with a trusted certificate."""
        started = time.monotonic()
        last: object = None
        while time.monotonic() - started < timeout:
            try:
                r = self.get(timeout=5)
                if r.status_code == 200:
                    return time.monotonic() - started
                last = r.status_code
            except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                last = exc
            time.sleep(0.2)
        raise SystemExit(f"{self.domain} did not answer 200 within {timeout:g}s (last: {last!r})")

    def containers(self) -> list[str]:
        """Ids of the running containers of the app's Compose project."""
        return run(
            ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.name}"]
        ).split()


def make_app(
    root: Path, name: str, lane: Lane, workers: int, memory: str | None, override: dict[str, Any] | None = None
) -> BenchApp:
    target = root / name
    (target / "app").mkdir(parents=True)
    (target / "app" / "__init__.py").write_text("")
    (target / "app" / "main.py").write_text(MAIN.replace("NAME", name))
    (target / "requirements.txt").write_text("fastapi>=0.115\n")
    app: dict[str, Any] = {"module": "app.main:app", "workers": workers}
    if memory:
        app["memory"] = memory
    config = {"name": name, "domain": f"{name}.composekit.test", "edge": "shared", "app": app}
    (target / "composekit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (target / "local.yaml").write_text(yaml.safe_dump(lane.overlay(), sort_keys=False))
    if override:
        (target / "composekit.override.yaml").write_text(yaml.safe_dump(override, sort_keys=False))
    return BenchApp(target, name, lane)


def edge_containers() -> dict[str, str]:
    """The shared edge's running containers: Compose service -> container id."""
    out = run(
        [
            "docker",
            "ps",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={EDGE_PROJECT}",
            "--format",
            '{{.ID}} {{.Label "com.docker.compose.service"}}',
        ]
    )
    return {service: cid for cid, service in (line.split() for line in out.splitlines() if line.strip())}


def edge_exists() -> bool:
    return bool(run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={EDGE_PROJECT}"]).strip())


def edge_volumes() -> set[str]:
    out = run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={EDGE_PROJECT}"])
    return set(out.split())


@dataclass
class EdgeGuard:
    """Refuses to start beside an edge someone else runs (the engine has one edge, test_edge.py owns its own), and at
    the end removes the edge and the volumes only when this run created them."""

    first: BenchApp
    volumes_before: set[str] = field(default_factory=set)

    def __enter__(self) -> EdgeGuard:
        if edge_exists():
            raise SystemExit(
                f"a shared edge ({EDGE_PROJECT}) already exists on this engine (another benchmark or "
                "tests/integration/test_edge.py): run this benchmark when it is gone. Nothing was started."
            )
        self.volumes_before = edge_volumes()
        return self

    def __exit__(self, *exc: Any) -> None:
        done = self.first.ck("edge", "down", "--force", "--delete-acme", timeout=180, check=False)
        try:
            for volume in sorted(edge_volumes() - self.volumes_before):
                run(["docker", "volume", "rm", volume], timeout=60)
        except SystemExit as exc:  # the engine gone (restarted by someone else): say what is left
            done = subprocess.CompletedProcess([], 1, "", str(exc))
        if done.returncode != 0:
            log(
                f"the edge may be left over (`docker compose -p {EDGE_PROJECT} down --volumes` removes it): "
                f"{done.stderr[-500:]}"
            )


def down(apps: list[BenchApp]) -> None:
    for a in reversed(apps):
        if a.ck("down", "--delete-volumes", timeout=180, check=False).returncode != 0:
            log(f"{a.name} may be left over: `docker compose -p {a.name} down --volumes` removes it")
        subprocess.run(["docker", "image", "rm", f"{a.name}-app:latest"], capture_output=True, timeout=60, check=False)


# -- cgroups ---------------------------------------------------------------------------------------------------------

CGROUP = Path("/sys/fs/cgroup")


def _cgroup_dir(cid: str, controller: str) -> Path:
    """The container's cgroup directory for ``controller`` (v1) or its unified one (v2), from its init's
    /proc/PID/cgroup, so it holds whichever cgroup driver the engine uses."""
    pid = run(["docker", "inspect", "--format", "{{.State.Pid}}", cid]).strip()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return CGROUP / controller / path.lstrip("/")
        if hierarchy == "0" and not controllers and not (CGROUP / controller).exists():
            return CGROUP / path.lstrip("/")
    raise SystemExit(f"no {controller} cgroup for container {cid}")


def memory_bytes(cid: str) -> int:
    """What `docker stats` shows: usage minus the inactive file cache (v1 memory.usage_in_bytes, v2 memory.current)."""
    d = _cgroup_dir(cid, "memory")
    stat = dict(line.split() for line in (d / "memory.stat").read_text().splitlines())
    if (d / "memory.current").exists():
        return int((d / "memory.current").read_text()) - int(stat.get("inactive_file", 0))
    return int((d / "memory.usage_in_bytes").read_text()) - int(stat.get("total_inactive_file", 0))


def cpu_seconds(cid: str) -> float:
    d = _cgroup_dir(cid, "cpuacct")
    if (d / "cpuacct.usage").exists():
        return int((d / "cpuacct.usage").read_text()) / 1e9
    stat = dict(line.split() for line in (d / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"]) / 1e6


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- a light HTTPS load ----------------------------------------------------------------------------------------------


@dataclass
class LightLoad:
    """``threads`` clients each sending GET / over HTTPS to 127.0.0.1 (Host and SNI = the app's domain) and pausing
    ``pause`` seconds between requests, until stopped or ``max_seconds``: (start, latency, error) per request."""

    app: BenchApp
    threads: int = 1
    pause: float = 0.02
    max_seconds: float = 300
    samples: list[tuple[float, float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LightLoad:
        self._until = time.monotonic() + self.max_seconds
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=15)

    def _run(self) -> None:
        verify = ssl.create_default_context(cafile=str(self.app.lane.roots))
        url = f"https://127.0.0.1:{self.app.lane.https_port}/"
        with httpx.Client(verify=verify, timeout=5) as client:
            while not self._stop.is_set() and time.monotonic() < self._until:
                start = time.monotonic()
                error = None
                try:
                    r = client.get(url, headers={"Host": self.app.domain}, extensions={"sni_hostname": self.app.domain})
                    if r.status_code != 200:
                        error = f"HTTP {r.status_code}"
                except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                    error = type(exc).__name__
                with self._lock:
                    self.samples.append((start, time.monotonic() - start, error))
                time.sleep(self.pause)

    def window(self, t0: float, t1: float) -> list[tuple[float, str | None]]:
        with self._lock:
            return [(lat, e) for s, lat, e in self.samples if t0 <= s <= t1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)
