"""Requests lost while the Docker daemon restarts, for three engine settings side by side, in one run.

One copy of stacks/fastapi (project es-bench), deployed with the real CLI against the local test environment
(scripts/setup-env.sh, scripts/pebble.sh). For each setting, in this order:

  defaults                              daemon.json {}
  live-restore                          {"live-restore": true}
  live-restore + userland-proxy=false   {"live-restore": true, "userland-proxy": false}

dockerd is first restarted with that daemon.json (not measured: applying userland-proxy restarts the
containers once), the stack is waited for, then 4 client threads send HTTPS requests to 127.0.0.1 (Host and
SNI = the stack's domain, trusting only Pebble's roots) while dockerd is stopped and started again
(scripts/dockerd-restart.sh, which only touches the dockerd of scripts/setup-env.sh). The load runs until
the stack serves again plus 3 s, at most --max-seconds per setting. Printed per setting: failed / sent, the
seconds from the stop until the last failed request (0 when none failed), and whether the containers kept
running (same id, same StartedAt).

The run holds /tmp/composekit-integration.lock (ports 80/443, and nobody else's docker command should run
into the restarts) from start to end, restores the engine's original command line in a finally block,
checks `docker info` answers, and takes its stack down. Run it with the project's venv, as root:

    .venv/bin/python benchmarks/daemon_restart.py
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.restart_load import (  # noqa: E402
    STATE,
    HttpsLoad,
    docker_answers,
    restart_dockerd,
    restore_engine,
    wait_serving,
)

SOURCE = REPO / "stacks" / "fastapi"
LOCK_FILE = Path("/tmp/composekit-integration.lock")
NAME = "es-bench"
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("defaults", {}),
    ("live-restore", {"live-restore": True}),
    ("live-restore + userland-proxy=false", {"live-restore": True, "userland-proxy": False}),
)


def log(message: str) -> None:
    sys.stderr.write(f"bench {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def run(argv: Sequence[str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}:\n{(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


@contextmanager
def host_ports(timeout: float) -> Iterator[None]:
    """Queue for the integration tests' lock (a blocking flock: waiting in line, not polling), at most ``timeout``."""

    def give_up(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(f"{LOCK_FILE} stayed locked for {timeout:g}s (integration tests running?)")

    with open(LOCK_FILE, "a") as lock:
        log(f"waiting for {LOCK_FILE} (at most {timeout:g}s)")
        previous = signal.signal(signal.SIGALRM, give_up)
        signal.alarm(int(timeout))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        log(f"holding {LOCK_FILE}")
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def started(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    out = run(["docker", "inspect", "--format", "{{.Name}} {{.Id}} {{.State.StartedAt}}", *names], REPO, 60)
    return {n: (i, s) for n, i, s in (line.split() for line in out.splitlines())}


def measure(label: str, daemon_json: Path, domain: str, roots: Path, max_seconds: float) -> dict[str, Any]:
    log(f"{label}: applying (restart 1 of 2, not measured)")
    t0 = time.monotonic()
    restart_dockerd(daemon_json)
    wait_serving(domain, roots, since=t0)
    time.sleep(2)
    names = run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={NAME}"], REPO).split()
    before = started(names)
    log(f"{label}: restarting dockerd under load")
    with HttpsLoad(domain, roots, threads=4, max_seconds=max_seconds, pace=0) as load:
        time.sleep(3)
        t0 = time.monotonic()
        restart_dockerd(daemon_json)
        wait_serving(domain, roots, since=t0, timeout=max_seconds)
        time.sleep(3)
        result = load.stop()
    back = (result.last_failure - t0) if result.last_failure is not None and result.last_failure > t0 else 0.0
    kept = started(list(before)) == before if before else False
    log(f"{label}: {result}; back to serving {back:.1f} s after the stop; containers kept running: {kept}")
    return {
        "settings": label,
        "daemon.json": json.loads(daemon_json.read_text()),
        "sent": result.sent,
        "failed": result.failed,
        "errors": dict(result.errors),
        "back_s": round(back, 1),
        "kept": kept,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| daemon settings | failed / sent | back to serving after the stop | containers kept running |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['settings']} | {r['failed']:,} / {r['sent']:,} | {r['back_s']:.1f} s | "
            f"{'yes' if r['kept'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-seconds", type=float, default=120, help="bound of each load run (default 120)")
    parser.add_argument("--lock-timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true", help="every figure as JSON instead of the table")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: it stops and starts dockerd")
    env = dict(line.split("=", 1) for line in (STATE / "env").read_text().splitlines() if "=" in line)
    run(["bash", str(REPO / "scripts" / "pebble.sh"), "start"], REPO)
    roots = Path(run(["bash", str(REPO / "scripts" / "pebble.sh"), "roots"], REPO).strip().splitlines()[-1])
    with tempfile.TemporaryDirectory(prefix="daemon-restart-") as tmp, host_ports(args.lock_timeout):
        target = Path(tmp) / NAME
        shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
        domain = f"{NAME}.composekit.test"
        (target / "local.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": NAME,
                    "domain": domain,
                    "acme": {
                        "ca_server": env["COMPOSEKIT_TEST_ACME_DIR"],
                        "ca_certificates": [env["COMPOSEKIT_TEST_PEBBLE_CA"]],
                    },
                    "images": {
                        "python": env["COMPOSEKIT_TEST_PYTHON_IMAGE"],
                        "traefik": env["COMPOSEKIT_TEST_TRAEFIK_IMAGE"],
                    },
                },
                sort_keys=False,
            )
        )
        ck = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml"]
        rows: list[dict[str, Any]] = []
        try:
            log("deploying the example stack")
            run([*ck, "up", "--no-smoke"], target)
            wait_serving(domain, roots, since=time.monotonic(), timeout=120)
            for label, settings in SETTINGS:
                daemon_json = Path(tmp) / f"{len(rows)}.json"
                daemon_json.write_text(json.dumps(settings) + "\n")
                rows.append(measure(label, daemon_json, domain, roots, args.max_seconds))
        finally:
            log("restoring the engine's original command line")
            restore_engine()
            if not docker_answers():
                raise SystemExit("the Docker engine does not answer after the restore")
            subprocess.run([*ck, "down", "--delete-volumes"], cwd=target, capture_output=True, timeout=300, check=False)
    sys.stdout.write(json.dumps(rows, indent=2) + "\n" if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
