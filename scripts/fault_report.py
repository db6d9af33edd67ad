"""Measure how a composekit stack rides out faults on this machine, and print the figures as a Markdown table.

Deploys stacks/fastapi as its own project (`fault-report`, with the local images and Pebble, as the
integration suite does), runs the scenarios of tests/integration/faults.py on it, prints the table, and
takes the stack down again (its volumes too: test data only). Needs root and the prepared machine:

    bash scripts/setup-env.sh                      # once per machine (Docker engine, images, Pebble)
    .venv/bin/python scripts/fault_report.py       # ~2 minutes; holds the integration suite's port lock
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration import faults  # noqa: E402
from tests.integration.conftest import STATE, TestEnv  # noqa: E402

NAME = "fault-report"


def load_testenv() -> TestEnv:
    """What the suite's `testenv` fixture reads: the env file of scripts/setup-env.sh and Pebble's roots."""
    env_file = STATE / "env"
    if not env_file.is_file():
        sys.exit(f"{env_file} not found: run `bash scripts/setup-env.sh` first")
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    for key, value in values.items():
        if key.startswith("DOCKER_"):
            os.environ.setdefault(key, value)
    pebble = REPO / "scripts" / "pebble.sh"
    subprocess.run(["bash", str(pebble), "start"], check=True, capture_output=True, text=True)
    roots = subprocess.run(["bash", str(pebble), "roots"], check=True, capture_output=True, text=True)
    return TestEnv(values=values, roots=Path(roots.stdout.strip().splitlines()[-1]))


def _seconds(value: float | None) -> str:
    return "never (deadline passed)" if value is None else f"{value:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4, help="client threads during the worker kill")
    parser.add_argument("--seconds", type=float, default=12, help="duration of the load during the worker kill")
    parser.add_argument("--kills", type=int, default=3, help="rounds of SIGKILL of the app's main process")
    args = parser.parse_args()

    env = load_testenv()
    with faults.host_ports_lock(), tempfile.TemporaryDirectory(prefix="composekit-fault-report-") as tmp:
        stack = faults.copy_stack(
            REPO / "stacks" / "fastapi", Path(tmp), NAME, env, app={"cpus": 1, "workers_per_core": 3, "memory": "2G"}
        )
        try:
            print(f"deploying {NAME} ...", file=sys.stderr)
            stack.ck("up", "--no-smoke")
            stack.wait_https("/health")
            print("killing a worker under load ...", file=sys.stderr)
            worker = faults.kill_one_worker_under_load(stack, threads=args.threads, seconds=args.seconds)
            kills = []
            for round_ in range(args.kills):
                print(f"killing the app's main process ({round_ + 1}/{args.kills}) ...", file=sys.stderr)
                kills.append(faults.kill_app_main_process(stack))
            print("restarting Traefik with the ACME CA unreachable ...", file=sys.stderr)
            ca = faults.ca_unreachable_restart(stack)
        finally:
            stack.ck("down", "--delete-volumes", check=False, timeout=120)

    failures = ", ".join(f"{n} x {kind}" for kind, n in sorted(worker.failures.items())) or "none"
    rows = [
        (
            f"`kill -9` of 1 of 3 gunicorn workers, {worker.threads} HTTPS client threads for {args.seconds:g} s",
            f"{worker.failed} failed of {worker.sent} sent ({failures}); workers {worker.workers_before} -> "
            f"{worker.workers_after}, the replacement forked after {_seconds(worker.seconds_to_replaced)}",
        ),
        (
            f"SIGKILL of the app container's PID 1 from the host, {len(kills)} times",
            f"RestartCount {kills[0].restart_count_before} -> {kills[-1].restart_count_after}; HTTPS 200 again after "
            f"{_spread([k.seconds_to_serving for k in kills])}, healthy (Docker) after "
            f"{_spread([k.seconds_to_healthy for k in kills])}",
        ),
        (
            "Traefik restarted with the ACME CA unreachable (its port rejected from Traefik's networks)",
            f"CA reachable from Traefik: before {_yes(ca.reachable_before)}, during {_yes(ca.reachable_during)}; "
            f"HTTPS 200 after {_seconds(ca.seconds_to_serving)}; certificate serial "
            f"{'kept' if ca.serial_after == ca.serial_before else 'CHANGED'} ({ca.serial_before}), chain verified "
            "against Pebble's roots",
        ),
    ]
    print("| fault | measured |")
    print("|---|---|")
    for fault, measured in rows:
        print(f"| {fault} | {measured} |")
    return 0


def _spread(values: list[float | None]) -> str:
    """Each round's figure, in the order measured."""
    return " / ".join(_seconds(v) for v in values)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


if __name__ == "__main__":
    raise SystemExit(main())
