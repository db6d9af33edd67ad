"""Requests lost during a code redeploy, three ways, on the same stack under the same constant HTTPS load.

One copy of tests/integration/apps/redeploy-app (project zd-bench), deployed with the real CLI against the local
test environment (scripts/setup-env.sh, scripts/pebble.sh). Each round redeploys the same one-line change
(VERSION = "rN-method") three ways, in this order:

  a  plain     `docker compose build app` (not timed), then `docker compose up -d` of the rendered files
  b  drain     `docker compose build app` (not timed), scale app to 2 (--no-recreate), wait until Docker says the
               new container is healthy, add it to Traefik's routes (what Traefik's Docker provider does on the
               health event), take the old one out (what a failing healthcheck does), `sleep 10`, stop and remove
               the old one
  c  composekit `composekit up --no-smoke` (build, migration, switch)

Meanwhile --threads client threads send GET / to 127.0.0.1:443 (Host and SNI = the stack's domain, trusting
only Pebble's roots) in a closed loop, bounded by --max-seconds per method. Printed per method: sent, failed (by
status or error), p50/p99 latency during the deploy window (deploy start -> end + 1 s), p99 of the steady 4 s
before it, the switch time (b: new container started -> old removed; c: the switch composekit reports) and the
deploy command's time.

The run holds /tmp/composekit-integration.lock (ports 80/443) from start to end and takes its stack down.
Run it with the project's venv, as root:

    .venv/bin/python benchmarks/redeploy_downtime.py --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import json
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from composekit.config.project import load_project  # noqa: E402
from composekit.engine.steps import docker_for  # noqa: E402
from composekit.engine.switch import write_routes  # noqa: E402

SOURCE = REPO / "tests" / "integration" / "apps" / "redeploy-app"
LOCK_FILE = Path("/tmp/composekit-integration.lock")
NAME = "zd-bench"
DOMAIN = f"{NAME}.composekit.test"
STEADY = 4.0


def log(message: str) -> None:
    sys.stderr.write(f"bench {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}:\n{(done.stderr or done.stdout)[-3000:]}")
    return done


@contextmanager
def host_ports() -> Iterator[None]:
    with open(LOCK_FILE, "a") as lock:
        log(f"waiting for {LOCK_FILE}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Load:
    """Closed-loop HTTPS clients recording (start time, latency, error or None) for every request."""

    roots: Path
    threads: int
    max_seconds: float
    samples: list[tuple[float, float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
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
        verify = ssl.create_default_context(cafile=str(self.roots))
        with httpx.Client(verify=verify, timeout=5) as client:
            while not self._stop.is_set() and time.monotonic() < self._until:
                start = time.monotonic()
                error = None
                try:
                    r = client.get("https://127.0.0.1/", headers={"Host": DOMAIN}, extensions={"sni_hostname": DOMAIN})
                    if r.status_code != 200:
                        error = f"HTTP {r.status_code}"
                except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                    error = type(exc).__name__
                with self._lock:
                    self.samples.append((start, time.monotonic() - start, error))
                if error:
                    time.sleep(0.01)


def get_root(roots: Path, timeout: float = 10) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(roots)), timeout=timeout) as client:
        return client.get("https://127.0.0.1/", headers={"Host": DOMAIN}, extensions={"sni_hostname": DOMAIN})


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def set_version(app: Path, version: str) -> None:
    main = app / "app" / "main.py"
    main.write_text(re.sub(r'VERSION = "[^"]*"', f'VERSION = "{version}"', main.read_text(), count=1))


class Bench:
    def __init__(self, app: Path, roots: Path) -> None:
        self.app = app
        self.roots = roots
        self.ck = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml"]
        self.compose = ["docker", "compose", "-p", NAME, "-f", ".composekit/compose.yaml"]

    def app_containers(self) -> list[str]:
        out = run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={NAME}",
                "--filter",
                "label=com.docker.compose.service=app",
            ],
            self.app,
        ).stdout
        return out.split()

    def name_of(self, cid: str) -> str:
        return run(["docker", "inspect", "--format", "{{.Name}}", cid], self.app).stdout.strip().lstrip("/")

    def healthy(self, cid: str, timeout: float = 120) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if (
                run(["docker", "inspect", "--format", "{{.State.Health.Status}}", cid], self.app).stdout.strip()
                == "healthy"
            ):
                return
            time.sleep(0.25)
        raise SystemExit(f"{cid} did not become healthy within {timeout:g}s")

    def deploy(self, method: str) -> tuple[float | None, str]:
        """Run one redeploy; returns (switch seconds or None, what was run)."""
        if method == "a":
            run([*self.compose, "up", "-d"], self.app)
            return None, "docker compose up -d"
        if method == "b":
            project = load_project((self.app / "composekit.yaml", self.app / "local.yaml"))
            docker = docker_for(project)
            old = self.app_containers()
            started = time.monotonic()
            run(
                [*self.compose, "up", "-d", "--no-deps", "--no-recreate", "--scale", f"app={len(old) + 1}", "app"],
                self.app,
            )
            new = [c for c in self.app_containers() if c not in old]
            self.healthy(new[0])
            old_names, new_name = [self.name_of(c) for c in old], self.name_of(new[0])
            write_routes(project, docker, [*old_names, new_name], [new_name])
            write_routes(project, docker, [new_name], [new_name])
            time.sleep(10)
            for c in old:
                run(["docker", "stop", "-t", "40", c], self.app)
                run(["docker", "rm", c], self.app)
            return time.monotonic() - started, "scale to 2 + drain + sleep 10"
        done = run([*self.ck, "up", "--no-smoke"], self.app)
        found = re.search(r"switch took ([0-9.]+)s", done.stderr)
        return (float(found.group(1)) if found else None), "composekit up"

    def measure(self, method: str, version: str, threads: int, max_seconds: float) -> dict[str, Any]:
        set_version(self.app, version)
        if method in "ab":
            run([*self.compose, "build", "app"], self.app)  # the image is ready before the deploy starts
        with Load(self.roots, threads, max_seconds) as load:
            time.sleep(STEADY)
            t0 = time.monotonic()
            switch, what = self.deploy(method)
            t1 = time.monotonic()
            time.sleep(2)
        steady = [lat for s, lat, e in load.samples if t0 - STEADY <= s < t0 and e is None]
        window = [(lat, e) for s, lat, e in load.samples if t0 <= s <= t1 + 1]
        errors = collections.Counter(e for _, _, e in load.samples if e)
        answer = get_root(self.roots).json()
        row = {
            "method": what,
            "sent": len(load.samples),
            "failed": sum(errors.values()),
            "errors": dict(errors),
            "p50_ms": round(pct([lat for lat, _ in window], 0.50), 1),
            "p99_ms": round(pct([lat for lat, _ in window], 0.99), 1),
            "steady_p99_ms": round(pct(steady, 0.99), 1),
            "switch_s": None if switch is None else round(switch, 1),
            "up_s": round(t1 - t0, 1),
            "serves_new": answer == {"version": version},
        }
        log(json.dumps(row))
        return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | failed / sent | errors | p50 / p99 during deploy (ms) | steady p99 (ms) | switch (s) | up (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        errors = ", ".join(f"{k} x{n}" for k, n in r["errors"].items()) or "-"
        switch = "-" if r["switch_s"] is None else f"{r['switch_s']:.1f}"
        lines.append(
            f"| {r['method']} | {r['failed']} / {r['sent']} | {errors} | {r['p50_ms']:.0f} / "
            f"{r['p99_ms']:.0f} | {r['steady_p99_ms']:.0f} | {switch} | {r['up_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=120, help="bound of the load per method")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = dict(line.split("=", 1) for line in Path("/var/lib/composekit-testenv/env").read_text().split())
    run(["bash", str(REPO / "scripts" / "pebble.sh"), "start"], REPO)
    roots = Path(run(["bash", str(REPO / "scripts" / "pebble.sh"), "roots"], REPO).stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory(prefix="zd-bench-") as tmp, host_ports():
        app = Path(tmp) / NAME
        shutil.copytree(SOURCE, app, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
        overlay = {
            "name": NAME,
            "domain": DOMAIN,
            "acme": {
                "ca_server": env["COMPOSEKIT_TEST_ACME_DIR"],
                "ca_certificates": [env["COMPOSEKIT_TEST_PEBBLE_CA"]],
            },
            "images": {"python": env["COMPOSEKIT_TEST_PYTHON_IMAGE"], "traefik": env["COMPOSEKIT_TEST_TRAEFIK_IMAGE"]},
        }
        (app / "local.yaml").write_text(yaml.safe_dump(overlay))
        bench = Bench(app, roots)
        rows: list[dict[str, Any]] = []
        try:
            log("first deploy")
            run([*bench.ck, "up", "--no-smoke"], app)
            until = time.monotonic() + 90
            while time.monotonic() < until:
                try:
                    get_root(roots, timeout=5)
                    break
                except (httpx.HTTPError, ssl.SSLError, OSError):
                    time.sleep(1)
            for n in range(1, args.rounds + 1):
                for method in "abc":
                    log(f"round {n}: method {method}")
                    rows.append(bench.measure(method, f"r{n}-{method}", args.threads, args.max_seconds))
        finally:
            subprocess.run([*bench.ck, "down", "--delete-volumes"], cwd=app, capture_output=True, timeout=180)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    c = [r for r in rows if r["method"] == "composekit up"]
    if c:
        print(
            f"\ncomposekit up: {sum(r['failed'] for r in c)} failed in {len(c)} redeploys; median switch "
            f"{statistics.median(r['switch_s'] or 0 for r in c):.1f}s"
        )


if __name__ == "__main__":
    main()
