"""The cost of a remote engine: `composekit up` against the local engine vs the same engine through SSH.

One copy of stacks/fastapi (project "remote-bench"), deployed with the real CLI against the local test
environment (scripts/setup-env.sh, scripts/pebble.sh) and the test sshd (scripts/sshd.sh, started here when
it is not running). The engine is the same in both columns, so the difference is what SSH costs composekit:
one `ssh -N -L` tunnel per command, through which every Docker and Compose call of the command goes.

Each round measures, alternating which column goes first:
  no-op up       `composekit up --no-smoke -q` with nothing changed (the stack runs)
  code-change up one line of app/main.py changed, then `composekit up --no-smoke -q`: rebuild (the build
                 context streamed through the tunnel), recreate, healthy, routed; the new code is checked
The stack comes up once before the rounds and goes down with --delete-volumes at the end.

The run holds /tmp/composekit-integration.lock (ports 80/443, as the integration tests do) from start to end.
Progress goes to stderr, the table (or --json) to stdout:

    .venv/bin/python benchmarks/remote_engine.py --rounds 3
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "stacks" / "fastapi"
NAME = "remote-bench"
DOMAIN = f"{NAME}.composekit.test"
SSH_HOST = "ssh://composekit-test"
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))


def log(message: str) -> None:
    sys.stderr.write(f"remote_engine: {message}\n")
    sys.stderr.flush()


def testenv() -> dict[str, str]:
    lines = (STATE / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def sshd_config() -> str:
    subprocess.run(["bash", str(REPO / "scripts" / "sshd.sh"), "start"], check=True, capture_output=True, timeout=60)
    env = subprocess.run(
        ["bash", str(REPO / "scripts" / "sshd.sh"), "env"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    return dict(line.split("=", 1) for line in env.splitlines() if "=" in line)["COMPOSEKIT_SSH_CONFIG"]


def prepare(work: Path, env: dict[str, str]) -> Path:
    target = work / NAME
    shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
    roots = (
        subprocess.run(
            ["bash", str(REPO / "scripts" / "pebble.sh"), "roots"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    overlay = {
        "name": NAME,
        "domain": DOMAIN,
        "acme": {"ca_server": env["COMPOSEKIT_TEST_ACME_DIR"], "ca_certificates": [env["COMPOSEKIT_TEST_PEBBLE_CA"]]},
        "images": {"python": env["COMPOSEKIT_TEST_PYTHON_IMAGE"], "traefik": env["COMPOSEKIT_TEST_TRAEFIK_IMAGE"]},
        "smoke": {"resolve": "127.0.0.1", "ca_file": roots},
    }
    (target / "local.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return target


def ck(stack: Path, *args: str, host: str | None = None) -> float:
    """Run the CLI; seconds it took (the whole process, as a user waits for it)."""
    cmd = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml"]
    cmd += ["--host", host] if host else []
    started = time.monotonic()
    done = subprocess.run([*cmd, *args], cwd=stack, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"composekit {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return took


def change_code(stack: Path, marker: str) -> None:
    main = stack / "app" / "main.py"
    lines = [line for line in main.read_text().splitlines() if not line.startswith("BENCH_MARKER = ")]
    main.write_text(
        "\n".join(lines) + f"\nBENCH_MARKER = {marker!r}\n\n\n@app.get('/bench-marker')\n"
        "def bench_marker() -> dict[str, str]:\n    return {'marker': BENCH_MARKER}\n"
    )


def check_marker(marker: str, roots: str) -> None:
    context = ssl.create_default_context(cafile=roots)
    with httpx.Client(verify=context, timeout=10) as client:
        answer = client.get(
            "https://127.0.0.1/bench-marker", headers={"Host": DOMAIN}, extensions={"sni_hostname": DOMAIN}
        )
    if answer.status_code != 200 or answer.json() != {"marker": marker}:
        raise SystemExit(f"the new code does not answer: {answer.status_code} {answer.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    env = testenv()
    os.environ["COMPOSEKIT_SSH_CONFIG"] = sshd_config()
    os.environ.pop("DOCKER_HOST", None)
    results: dict[str, dict[str, list[float]]] = {k: {"local": [], "ssh": []} for k in ("no-op up", "code-change up")}
    with open("/tmp/composekit-integration.lock", "w") as lock, tempfile.TemporaryDirectory() as tmp:
        log("waiting for /tmp/composekit-integration.lock")
        fcntl.flock(lock, fcntl.LOCK_EX)
        stack = prepare(Path(tmp), env)
        roots = yaml.safe_load((stack / "local.yaml").read_text())["smoke"]["ca_file"]
        try:
            log("first deploy (local engine)")
            ck(stack, "up", "--no-smoke", "-q")
            for i in range(opts.rounds):
                order = [("local", None), ("ssh", SSH_HOST)]
                if i % 2:
                    order.reverse()
                for column, host in order:
                    took = ck(stack, "up", "--no-smoke", "-q", host=host)
                    results["no-op up"][column].append(took)
                    log(f"round {i + 1}: no-op up, {column}: {took:.2f} s")
                for column, host in order:
                    marker = f"{column}-{i}"
                    change_code(stack, marker)
                    took = ck(stack, "up", "--no-smoke", "-q", host=host)
                    check_marker(marker, roots)
                    results["code-change up"][column].append(took)
                    log(f"round {i + 1}: code-change up, {column}: {took:.2f} s")
        finally:
            ck(stack, "down", "--delete-volumes")
            subprocess.run(["docker", "image", "rm", "-f", f"{NAME}-app:latest"], capture_output=True, timeout=120)
    if opts.json:
        sys.stdout.write(json.dumps({"machine": platform.node(), "rounds": opts.rounds, "results": results}) + "\n")
        return
    print(f"| {opts.rounds} rounds, seconds (median; all runs) | local engine | same engine through SSH | ratio |")
    print("|---|---|---|---|")
    for what, columns in results.items():
        local, ssh = statistics.median(columns["local"]), statistics.median(columns["ssh"])
        runs = {k: ", ".join(f"{v:.2f}" for v in columns[k]) for k in columns}
        print(f"| {what} | {local:.2f} ({runs['local']}) | {ssh:.2f} ({runs['ssh']}) | {ssh / local:.2f}x |")


if __name__ == "__main__":
    main()
