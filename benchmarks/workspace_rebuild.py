"""Rebuild time of a uv workspace app after a one-line code change, against a cold build, side by side.

The repository is tests/fixtures/uv-workspace (FastAPI's full-stack layout: the workspace's pyproject.toml and
uv.lock at the root, the app in the member backend/). Its uv.lock is generated with this machine's package index,
then `composekit init` writes the Dockerfile (the lock and every member's pyproject.toml copied and synced before
backend/ is copied) and `composekit render` the compose file. Nothing is deployed: only the app image is built,
with `docker compose build` (BuildKit) on the rendered compose file, FROM the local base image.

Each round measures, alternately (cold then edit, then edit then cold, so drift hits both alike):
  cold build   `docker compose build --no-cache app`: every layer rebuilt (BuildKit's cache mounts, the pip and uv
               download caches, persist across --no-cache: no package is downloaded again, it is installed again)
  code edit    one line of backend/app/main.py changed, then `docker compose build app`; the build log must show
               the dependency layer (uv sync) CACHED and the code layer (COPY backend) rebuilt, else the run fails
and prints the medians and edit/cold (the issue's target: at most 0.2).

It touches only its own project (bench-workspace) and removes its images at the end; it prunes nothing global.
It publishes no port, so it does not take the integration tests' lock. Progress on stderr, the table (or --json)
on stdout:

    .venv/bin/python benchmarks/workspace_rebuild.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "fixtures" / "uv-workspace"
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))
NAME = "bench-workspace"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
EDITED = "backend/app/main.py"
TITLE_RE = re.compile(r"^app = FastAPI\(title=.*$", re.MULTILINE)


class BenchError(Exception):
    """A step failed; the message says what was run and what it answered."""


def log(message: str) -> None:
    sys.stderr.write(f"bench {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


@dataclass
class Run:
    seconds: float
    output: str


def run(argv: Sequence[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> Run:
    """The one place commands run: timed, bounded, and a failure carries the command and its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(argv)}` (in {cwd}) did not finish within {timeout:g}s") from None
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-4000:]
        raise BenchError(f"`{' '.join(argv)}` (in {cwd}) exited {done.returncode}:\n{output}")
    return Run(seconds, done.stdout + done.stderr)


def package_index() -> str:
    """The simple index pip uses on this machine (its config), else PyPI's: what uv locks against."""
    listed = run([sys.executable, "-m", "pip", "config", "list"], REPO, 60).output
    for line in listed.splitlines():
        match = re.match(r"^[\w:.-]*\.index-url='([^']+)'$", line.strip())
        if match and not line.split("=")[0].endswith("extra-index-url"):
            return match.group(1)
    return "https://pypi.org/simple"


def python_image() -> str:
    env_file = STATE / "env"
    if not env_file.is_file():
        raise BenchError(f"{env_file} not found: run `bash scripts/setup-env.sh` to build the local base image")
    for line in env_file.read_text().splitlines():
        if line.startswith("COMPOSEKIT_TEST_PYTHON_IMAGE="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise BenchError(f"{env_file} names no COMPOSEKIT_TEST_PYTHON_IMAGE; run `bash scripts/setup-env.sh` again")


def prepare(root: Path, timeout: float) -> Path:
    """The fixture with its uv.lock, inited and rendered as a user would, against the local base image."""
    repo = root / "uv-workspace"
    shutil.copytree(SOURCE, repo)
    uv = Path(sys.executable).parent / "uv"
    uv_cmd = [str(uv)] if uv.is_file() else [sys.executable, "-m", "uv"]
    lock_env = {"SSL_CERT_FILE": CA_BUNDLE, "UV_CACHE_DIR": str(root / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never"}
    run([*uv_cmd, "lock", "--default-index", package_index()], repo, timeout, lock_env)
    ck = [sys.executable, "-m", "composekit.cli"]
    said = run([*ck, "init", str(repo)], root, timeout).output
    if "module app.main:app" not in said or "app/workdir backend" not in said:
        raise BenchError(f"composekit init did not place the workspace member as expected:\n{said}")
    (repo / "local.yaml").write_text(yaml.safe_dump({"name": NAME, "images": {"python": python_image()}}))
    run([*ck, "-c", "composekit.yaml", "-c", "local.yaml", "render"], repo, timeout)
    if TITLE_RE.search((repo / EDITED).read_text()) is None:
        raise BenchError(f"{SOURCE / EDITED} no longer has the `app = FastAPI(title=...)` line this benchmark edits")
    return repo


def build(repo: Path, timeout: float, *extra: str) -> Run:
    compose = ["docker", "compose", "--progress", "plain", "--project-name", NAME, "--file", ".composekit/compose.yaml"]
    return run([*compose, "build", *extra, "app"], repo, timeout)


def edit(repo: Path, round_no: int) -> None:
    """One line of the app changed: what a code-only commit does (never a content an earlier run built)."""
    path = repo / EDITED
    title = f"round {round_no} at {time.time_ns()}"
    path.write_text(TITLE_RE.sub(f'app = FastAPI(title="{title}")', path.read_text(), count=1))


def _cached(output: str, step: str) -> list[bool]:
    """For each build step whose line matches ``step``: whether the log shows it taken from the cache."""
    ids = re.findall(rf"^#(\d+) \[[^\]]*\] {step}", output, re.MULTILINE)
    return [re.search(rf"^#{i} CACHED$", output, re.MULTILINE) is not None for i in ids]


def code_only_rebuilt(output: str) -> bool:
    """The build log shows the dependency layer (uv sync) from the cache and the member's code copied again."""
    sync, code = _cached(output, r"RUN [^\n]*uv sync"), _cached(output, "COPY backend /app/backend")
    return bool(sync) and all(sync) and bool(code) and not any(code)


def cleanup(repo: Path) -> None:
    found = subprocess.run(
        ["docker", "image", "ls", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={NAME}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout.split()
    for ref in [f"{NAME}-app:latest", *sorted(set(found))]:
        subprocess.run(["docker", "image", "rm", ref], capture_output=True, text=True, timeout=120, check=False)
    log("removed the benchmark's images")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one cold build and one edit, 1 to 20")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON instead of the table")
    parser.add_argument("--step-timeout", type=float, default=600, help="seconds one build may take (default 600)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be from 1 to 20")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    cold: list[float] = []
    warm: list[float] = []
    order: list[str] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="composekit-bench-ws-") as tmp:
            repo = prepare(Path(tmp), args.step_timeout)
            try:
                log("first build (fills BuildKit's cache mounts: not measured)")
                build(repo, args.step_timeout)
                for round_no in range(1, args.rounds + 1):
                    steps = ["cold", "edit"] if round_no % 2 else ["edit", "cold"]
                    order.append(" ".join(steps))
                    for step in steps:
                        if step == "cold":
                            result = build(repo, args.step_timeout, "--no-cache")
                            cold.append(result.seconds)
                        else:
                            edit(repo, round_no)
                            result = build(repo, args.step_timeout)
                            if not code_only_rebuilt(result.output):
                                raise BenchError(
                                    f"after a code edit, expected the uv sync layer cached and the code copied again:"
                                    f"\n{result.output}"
                                )
                            warm.append(result.seconds)
                        log(f"round {round_no}: {step} build {result.seconds:.1f}s")
            finally:
                cleanup(repo)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    figures = {
        "cold_build_s": cold,
        "edit_rebuild_s": warm,
        "cold_median_s": statistics.median(cold),
        "edit_median_s": statistics.median(warm),
        "ratio_edit_over_cold": statistics.median(warm) / statistics.median(cold),
    }
    engine = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    meta = {
        "rounds": args.rounds,
        "order": " | ".join(order),
        "engine": engine,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "seconds_total": round(time.monotonic() - started, 1),
    }
    if args.json:
        sys.stdout.write(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")
    else:
        sys.stdout.write(
            f"workspace_rebuild: tests/fixtures/uv-workspace, {args.rounds} round(s), order {meta['order']}; "
            f"engine {engine}, {meta['cpus']} CPUs\n"
            f"cold build, --no-cache (s)       median {figures['cold_median_s']:.2f}  "
            f"({', '.join(f'{s:.2f}' for s in cold)})\n"
            f"one-line code edit, rebuild (s)  median {figures['edit_median_s']:.2f}  "
            f"({', '.join(f'{s:.2f}' for s in warm)})\n"
            f"edit / cold                      {figures['ratio_edit_over_cold']:.3f}  (target: <= 0.2)\n"
        )
    log(f"done in {meta['seconds_total']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
