"""Shipping an image to another engine without a registry: the whole `docker save` archive (A, the baseline:
`docker save IMAGE | docker -H OTHER load`) against composekit's layer-thin archive (B, `Docker.ship_image`: only
the layers the other engine lacks), side by side.

The other engine is node2 of the test environment (scripts/swarm.sh: a second dockerd in its own network
namespace; its swarm is started and stopped here, nothing is deployed on it). The image is stacks/fastapi's app,
built twice by composekit's generated Dockerfile on the main engine: release r1, then r2 with one line of
app/main.py changed. Two situations, each measured for A and for B in every round (alternating which goes first):

  first ship     node2 holds only the base image (every other image on node2 removed first), ships r1
  code change    node2 holds r1, ships r2

For each: bytes sent to node2's engine and seconds until `docker load` returned; then node2's image ID is
checked to equal the main engine's (both methods must deliver the same image). Medians, A/B ratios and min-max
go to stdout (or --json). The run holds /tmp/composekit-integration.lock (the main engine may be in a swarm only
under it) from start to end:

    .venv/bin/python benchmarks/image_shipping.py --rounds 3
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from composekit.engine.docker import Docker  # noqa: E402
from composekit.engine.target import Engine, Target  # noqa: E402

SOURCE = REPO / "stacks" / "fastapi"
NAME = "ship-bench"
LOCK_FILE = "/tmp/composekit-integration.lock"
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))
NODE2 = "unix:///run/ck-node2.sock"
SITUATIONS = ("first ship", "code change")


def log(message: str) -> None:
    sys.stderr.write(f"image_shipping: {message}\n")
    sys.stderr.flush()


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"image_shipping: {' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def node2(*args: str, timeout: float = 300) -> str:
    return run(["docker", "-H", NODE2, *args], timeout=timeout)


def image_id(image: str, host: str | None = None) -> str:
    found = subprocess.run(
        ["docker", *(["-H", host] if host else []), "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return found.stdout.strip() if found.returncode == 0 else ""


def whole(image: str) -> int:
    """A: `docker save IMAGE | docker -H node2 load`, counting the bytes on the way."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.Popen(["docker", "-H", NODE2, "load", "--quiet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert save.stdout is not None and load.stdin is not None
    sent = 0
    while chunk := save.stdout.read(1 << 20):
        sent += len(chunk)
        load.stdin.write(chunk)
    load.stdin.close()
    if (save.wait(timeout=600), load.wait(timeout=600)) != (0, 0):
        raise SystemExit(f"image_shipping: docker save | docker -H {NODE2} load failed")
    return sent


def thin(image: str) -> int:
    """B: composekit's Docker.ship_image (what `up --build-local` and swarm node shipping run)."""
    here = Docker(NAME, [])
    there = Docker(NAME, [], engine=Engine(Target(NODE2, "benchmark"), host=NODE2))
    return here.ship_image(image, there).sent


METHODS: dict[str, Callable[[str], int]] = {"A": whole, "B": thin}
LABELS = {"A": "whole docker save archive", "B": "composekit, layer-thin"}


def reset_node2(base: str, keep: str | None) -> None:
    """node2 with only ``base`` (and ``keep``): every other image, and stopped containers, removed."""
    node2("container", "prune", "--force")
    for ref in node2("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split():
        if ref not in (base, keep) and not ref.endswith(":<none>"):
            node2("image", "rm", "--force", ref)
    node2("image", "prune", "--force")  # what the removed images left untagged
    if image_id(base, NODE2) != image_id(base):
        whole(base)


def build(stack: Path, tag: str) -> None:
    run(["docker", "compose", "--project-name", NAME, "--file", ".composekit/compose.yaml", "build", "app"], stack)
    run(["docker", "tag", f"{NAME}-app:latest", tag])


def prepare(work: Path, env: dict[str, str]) -> Path:
    stack = work / NAME
    shutil.copytree(SOURCE, stack, ignore=shutil.ignore_patterns(".composekit", "__pycache__", "Dockerfile*"))
    overlay = {"name": NAME, "images": {"python": env["COMPOSEKIT_TEST_PYTHON_IMAGE"]}}
    (stack / "local.yaml").write_text(yaml.safe_dump(overlay))
    cli = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml", "render"]
    run(cli, stack)
    return stack


def measure(method: str, image: str) -> tuple[int, float]:
    started = time.monotonic()
    sent = METHODS[method](image)
    seconds = time.monotonic() - started
    if image_id(image, NODE2) != image_id(image):
        raise SystemExit(f"image_shipping: {LABELS[method]} left node2 without {image}")
    return sent, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="every figure as JSON instead of the table")
    parser.add_argument("--lock-timeout", type=float, default=1800)
    args = parser.parse_args()
    env = dict(
        line.split("=", 1) for line in (STATE / "env").read_text().splitlines() if "=" in line and line[0] != "#"
    )
    base = env["COMPOSEKIT_TEST_PYTHON_IMAGE"]
    figures: dict[tuple[str, str], list[tuple[int, float]]] = {(s, m): [] for s in SITUATIONS for m in METHODS}
    with open(LOCK_FILE, "w") as lock, tempfile.TemporaryDirectory() as tmp:
        deadline = time.monotonic() + args.lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"image_shipping: {LOCK_FILE} stayed locked for {args.lock_timeout:g}s") from None
                time.sleep(2)
        log(f"holding {LOCK_FILE}; starting node2 (scripts/swarm.sh start)")
        run(["bash", str(REPO / "scripts" / "swarm.sh"), "start"], timeout=300)
        try:
            stack = prepare(Path(tmp), env)
            log("building r1 and r2 (one line of app/main.py changed)")
            build(stack, f"{NAME}-app:r1")
            main_py = stack / "app" / "main.py"
            main_py.write_text(main_py.read_text() + "\n# image_shipping: release r2\n")
            build(stack, f"{NAME}-app:r2")
            for n in range(args.rounds):
                order = ["A", "B"] if n % 2 == 0 else ["B", "A"]
                for method in order:
                    reset_node2(base, None)
                    figures[("first ship", method)].append(measure(method, f"{NAME}-app:r1"))
                    reset_node2(base, f"{NAME}-app:r1")
                    figures[("code change", method)].append(measure(method, f"{NAME}-app:r2"))
                    log(f"round {n + 1} {method}: {figures[('first ship', method)][-1]}, "
                        f"{figures[('code change', method)][-1]}")  # fmt: skip
        finally:
            reset_node2(base, None)
            run(["bash", str(REPO / "scripts" / "swarm.sh"), "stop"], timeout=300)
            for tag in ("r1", "r2", "latest"):
                subprocess.run(["docker", "image", "rm", f"{NAME}-app:{tag}"], capture_output=True, timeout=120)
    if args.json:
        print(json.dumps({f"{s} {m}": v for (s, m), v in figures.items()}, indent=1))
        return
    print(f"A: {LABELS['A']}; B: {LABELS['B']} ({args.rounds} rounds; medians, A/B, B min-max)")
    print(f"{'figure':34} {'A median':>12} {'B median':>12} {'A/B':>8} {'B min-max':>22}")
    for s in SITUATIONS:
        for i, (what, fmt) in enumerate((("bytes sent", "{:,.0f}"), ("seconds", "{:.2f}"))):
            a = [f[i] for f in figures[(s, "A")]]
            b = [f[i] for f in figures[(s, "B")]]
            ma, mb = statistics.median(a), statistics.median(b)
            spread = f"{fmt.format(min(b))}-{fmt.format(max(b))}"
            ratio = f"{ma / mb:,.1f}" if mb else "-"
            print(f"{s + ': ' + what:34} {fmt.format(ma):>12} {fmt.format(mb):>12} {ratio:>8} {spread:>22}")


if __name__ == "__main__":
    main()
