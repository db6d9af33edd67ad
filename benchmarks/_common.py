"""What every benchmark needs of the local test environment: its variables checked, bounded commands, and the
integration tests' lock on the host ports. The benchmarks written before this module keep their own copies."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))
SETUP_HINT = "bash scripts/setup-env.sh && bash scripts/pebble.sh start"
LANE0_LOCK = Path("/tmp/composekit-integration.lock")


class BenchError(Exception):
    """A benchmark cannot go on: the message names what failed and how to fix it."""


def log(message: str) -> None:
    sys.stderr.write(f"bench {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def load_env(images: Sequence[str]) -> dict[str, str]:
    """The test environment scripts/setup-env.sh wrote, checked: the engine, the named local images (variables of
    the env file), Pebble answering. DOCKER_* settings of the file reach this process's environment."""
    env_file = STATE / "env"
    if not env_file.is_file():
        raise BenchError(f"{env_file} not found: the local test environment is missing; run `{SETUP_HINT}`")
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    wanted = [*images, "COMPOSEKIT_TEST_ACME_DIR", "COMPOSEKIT_TEST_PEBBLE_CA"]
    missing = [key for key in wanted if not values.get(key)]
    if missing:
        raise BenchError(f"{env_file} lacks {', '.join(missing)}; run `{SETUP_HINT}`")
    for key, value in values.items():
        if key.startswith("DOCKER_"):
            os.environ.setdefault(key, value)
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise BenchError(f"the Docker engine does not answer ({probe.stderr.strip()[:200]}); run `{SETUP_HINT}`")
    for key in images:
        if subprocess.run(["docker", "image", "inspect", values[key]], capture_output=True).returncode:
            raise BenchError(f"image {values[key]} ({key}) is not on this engine; run `{SETUP_HINT}`")
    ca = values["COMPOSEKIT_TEST_PEBBLE_CA"]
    directory = values["COMPOSEKIT_TEST_ACME_DIR"].replace("host.docker.internal", "localhost")
    try:
        httpx.get(directory, verify=ca, timeout=5).raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        raise BenchError(f"Pebble does not answer at {directory} ({exc}); run `{SETUP_HINT}`") from None
    return values


@dataclass
class Run:
    seconds: float
    stdout: str


def run(
    argv: Sequence[str], cwd: Path, timeout: float, *, check: bool = True, env: Mapping[str, str] | None = None
) -> Run:
    """The one place commands run: timed, bounded, and a failure carries the command and its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else {**os.environ, **env},
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{' '.join(argv)}` (in {cwd}) did not finish within {timeout:g}s") from None
    seconds = time.perf_counter() - start
    if check and done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-4000:]
        raise BenchError(f"`{' '.join(argv)}` (in {cwd}) exited {done.returncode}:\n{output}")
    return Run(seconds, done.stdout)


@contextmanager
def host_ports(timeout: float, lock_file: Path = LANE0_LOCK) -> Iterator[None]:
    """Hold the integration tests' lock on the host ports for the whole run, waiting at most ``timeout``."""
    with open(lock_file, "a") as lock:
        deadline = time.monotonic() + timeout
        next_note = 0.0
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(
                        f"{lock_file} stayed locked for {timeout:g}s (integration tests running?); "
                        "try again later or raise --lock-timeout"
                    ) from None
                if now >= next_note:
                    log(f"waiting for {lock_file} (another stack holds the ports), up to {deadline - now:.0f}s more")
                    next_note = now + 60
                time.sleep(2)
        log(f"holding {lock_file}")
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
