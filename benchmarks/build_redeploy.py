"""Build and redeploy times of composekit's generated Dockerfile against a naive one, side by side.

Two copies of stacks/fastapi, deployed with the real CLI against the local test environment
(scripts/setup-env.sh, scripts/pebble.sh):

  A  no Dockerfile in the app: composekit generates one (dependencies installed in their own layer
     before the code, build stage + slim final stage, pip cache mount, .dockerignore)
  B  a naive Dockerfile committed in the app: one stage, `COPY . /app` before `pip install`, no
     cache mount; same base image ARG, non-root user, volume directory and CMD as A

Each round measures, for each variant (order A B, then B A, and so on, so drift hits both alike):
  cold build      `docker compose build --no-cache app` on composekit's rendered compose file
  redeploy        one line of app/main.py edited, then `composekit up --no-smoke -q` while the stack
                  runs: rebuild, migration, recreate, healthy, routed (the new code is checked to answer)
  image size      of the final image
and takes the stack down with --delete-volumes before the other variant comes up.

Only one stack can publish ports 80/443 (where Pebble validates): the run holds the lock file that
the integration tests hold (/tmp/composekit-integration.lock) from start to end, so it waits for a
running test module and a test module waits for it. It touches only its own projects (bench-a,
bench-b) and removes their images at the end; it prunes nothing global.

Progress goes to stderr, the table (or --json) to stdout. Run it with the project's venv:

    .venv/bin/python benchmarks/build_redeploy.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from composekit.config import load_config  # noqa: E402
from composekit.render.dockerfile import APP_UID, GUNICORN_CONF_PATH, RUNTIME_PACKAGES  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BenchError, Run, host_ports, log, run  # noqa: E402

from composekit.render.names import app_image  # noqa: E402

SOURCE = REPO / "stacks" / "fastapi"
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))
SETUP_HINT = "bash scripts/setup-env.sh && bash scripts/pebble.sh start"
REQUIRED = (
    "COMPOSEKIT_TEST_PYTHON_IMAGE",
    "COMPOSEKIT_TEST_TRAEFIK_IMAGE",
    "COMPOSEKIT_TEST_ACME_DIR",
    "COMPOSEKIT_TEST_PEBBLE_CA",
)
# The line of app/main.py each round edits (a real code change: the new value is checked over HTTPS).
EDITED_LINE = '"app": "shop",'
VARIANTS = {"A": "generated", "B": "naive"}
FIGURES = (
    ("cold_build_s", "cold build, --no-cache (s)", "{:.1f}"),
    ("redeploy_s", "code edit -> up: rebuild+redeploy (s)", "{:.1f}"),
    ("image_mb", "final image size (MB)", "{:.1f}"),
)

NAIVE_DOCKERFILE = """\
# Benchmark variant B: the naive Dockerfile many apps start with. One stage, the whole context
# copied before the dependencies are installed (any code change reinstalls them), no cache mount,
# no .dockerignore. The user, volume directory and CMD are the ones composekit's Dockerfile uses.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${{PYTHON_IMAGE}}
RUN groupadd --system --gid {uid} app \\
    && useradd --system --uid {uid} --gid app --no-create-home --home-dir /nonexistent \\
        --shell /usr/sbin/nologin app{mkdirs}
WORKDIR /app
COPY . /app
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt {runtime}
ENV PATH=/opt/venv/bin:$PATH
USER app
EXPOSE {port}
CMD ["gunicorn", "--config", "{conf}", "{module}"]
"""


@dataclass
class Env:
    values: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.values[key]


def load_env() -> Env:
    """The test environment scripts/setup-env.sh wrote, checked: engine, images, Pebble answering."""
    env_file = STATE / "env"
    if not env_file.is_file():
        raise BenchError(f"{env_file} not found: the local test environment is missing; run `{SETUP_HINT}`")
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    missing = [key for key in REQUIRED if not values.get(key)]
    if missing:
        raise BenchError(f"{env_file} lacks {', '.join(missing)}; run `{SETUP_HINT}`")
    for key, value in values.items():
        if key.startswith("DOCKER_"):
            os.environ.setdefault(key, value)
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise BenchError(f"the Docker engine does not answer ({probe.stderr.strip()[:200]}); run `{SETUP_HINT}`")
    for key in ("COMPOSEKIT_TEST_PYTHON_IMAGE", "COMPOSEKIT_TEST_TRAEFIK_IMAGE"):
        if subprocess.run(["docker", "image", "inspect", values[key]], capture_output=True, check=False).returncode:
            raise BenchError(f"image {values[key]} ({key}) is not on this engine; run `{SETUP_HINT}`")
    ca = values["COMPOSEKIT_TEST_PEBBLE_CA"]
    if not Path(ca).is_file():
        raise BenchError(f"Pebble's certificate {ca} does not exist; run `{SETUP_HINT}`")
    directory = values["COMPOSEKIT_TEST_ACME_DIR"].replace("host.docker.internal", "localhost")
    try:
        httpx.get(directory, verify=ca, timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise BenchError(f"Pebble does not answer at {directory} ({exc}); run `{SETUP_HINT}`") from None
    return Env(values)


@dataclass
class Variant:
    key: str  # A or B
    dir: Path
    name: str
    domain: str
    image: str
    step_timeout: float
    results: dict[str, list[float]] = field(default_factory=lambda: {f: [] for f, _, _ in FIGURES})
    first_up_s: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.key} ({VARIANTS[self.key]})"

    def ck(self, *args: str, check: bool = True) -> Run:
        """The real CLI, as a user runs it from the stack's directory, on this checkout's code."""
        cmd = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml", *args]
        return run(cmd, self.dir, self.step_timeout, check=check)

    def compose(self, *args: str) -> Run:
        cmd = ["docker", "compose", "--project-name", self.name, "--file", ".composekit/compose.yaml", *args]
        return run(cmd, self.dir, self.step_timeout)

    def images(self) -> list[str]:
        """Every image this project built: compose labels them, the ones a rebuild untagged included."""
        found = run(
            [
                "docker",
                "image",
                "ls",
                "--all",
                "--quiet",
                "--no-trunc",
                "--filter",
                f"label=com.docker.compose.project={self.name}",
            ],
            self.dir,
            60,
            check=False,
        )
        return sorted(set(found.stdout.split()))

    def down(self) -> None:
        self.ck("down", "--delete-volumes", check=False)


def make_variant(key: str, root: Path, env: Env, step_timeout: float) -> Variant:
    name = f"bench-{key.lower()}"
    target = root / name
    shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns(".composekit", "__pycache__", "Dockerfile*"))
    domain = f"{name}.composekit.test"
    overlay = {
        "name": name,
        "domain": domain,
        "acme": {"ca_server": env["COMPOSEKIT_TEST_ACME_DIR"], "ca_certificates": [env["COMPOSEKIT_TEST_PEBBLE_CA"]]},
        "images": {"python": env["COMPOSEKIT_TEST_PYTHON_IMAGE"], "traefik": env["COMPOSEKIT_TEST_TRAEFIK_IMAGE"]},
    }
    (target / "local.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    config = load_config(target / "composekit.yaml", target / "local.yaml")
    if key == "B":
        paths = " ".join(sorted(config.app.volumes.values()))
        mkdirs = f" \\\n    && mkdir -p {paths} && chown app:app {paths}" if paths else ""
        (target / "Dockerfile").write_text(
            NAIVE_DOCKERFILE.format(
                uid=APP_UID,
                mkdirs=mkdirs,
                runtime=RUNTIME_PACKAGES,
                port=config.app.port,
                conf=GUNICORN_CONF_PATH,
                module=config.app.module,
            )
        )
    main = (target / "app" / "main.py").read_text()
    if main.count(EDITED_LINE) != 1:
        raise BenchError(f"{SOURCE / 'app' / 'main.py'} no longer has the line {EDITED_LINE!r} this benchmark edits")
    return Variant(key, target, name, domain, app_image(config), step_timeout)


def edit_code(variant: Variant, marker: str) -> None:
    """Change one line of app/main.py: what a code-only commit does."""
    main = variant.dir / "app" / "main.py"
    lines = main.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip().startswith('"app": '):
            lines[i] = line[: len(line) - len(line.lstrip())] + f'"app": "{marker}",\n'
            break
    main.write_text("".join(lines))


def serves(variant: Variant, marker: str, timeout: float = 15) -> None:
    """The redeployed code answers through Traefik (certificate not judged: that is smoke's job)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            with httpx.Client(verify=False, timeout=5) as client:
                answer = client.get(
                    "https://127.0.0.1/", headers={"Host": variant.domain}, extensions={"sni_hostname": variant.domain}
                )
            if answer.status_code == 200 and answer.json().get("app") == marker:
                return
            last = f"HTTP {answer.status_code} {answer.text[:120]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise BenchError(
                f"{variant.label}: after the redeploy, https://{variant.domain}/ does not serve the edited "
                f"code (app = {marker!r}); last answer: {last}"
            )
        time.sleep(0.5)


def measure(variant: Variant, round_no: int) -> None:
    """One round of one variant, from no stack to no stack."""
    tag = f"round {round_no} {variant.label}"
    variant.ck("render")
    cold = variant.compose("build", "--no-cache", "app")
    log(f"{tag}: cold build {cold.seconds:.1f}s")
    first = variant.ck("up", "--no-smoke", "-q")
    log(f"{tag}: first up {first.seconds:.1f}s (image already built)")
    marker = f"shop-{variant.key.lower()}{round_no}-{time.time_ns()}"
    edit_code(variant, marker)
    redeploy = variant.ck("up", "--no-smoke", "-q")
    serves(variant, marker)
    log(f"{tag}: code edit -> up {redeploy.seconds:.1f}s (new code served)")
    size = run(["docker", "image", "inspect", "--format", "{{.Size}}", variant.image], variant.dir, 60)
    size_mb = int(size.stdout.strip()) / 1e6
    log(f"{tag}: image {size_mb:.1f} MB; taking the stack down")
    variant.results["cold_build_s"].append(cold.seconds)
    variant.results["redeploy_s"].append(redeploy.seconds)
    variant.results["image_mb"].append(size_mb)
    variant.first_up_s.append(first.seconds)
    variant.down()


def cleanup(variants: list[Variant]) -> None:
    """Our stacks down (volumes too), our images removed: the tag, then every image our projects built."""
    for v in variants:
        try:
            v.down()
        except BenchError as exc:
            log(f"warning: {exc}")
    for v in variants:
        run(["docker", "image", "rm", v.image], v.dir, 120, check=False)
        for image_id in v.images():
            # No --force: an image another tag or a container still uses is left alone.
            rm = subprocess.run(
                ["docker", "image", "rm", image_id], capture_output=True, text=True, timeout=120, check=False
            )
            if rm.returncode != 0 and "No such image" not in rm.stderr:
                log(f"warning: could not remove {image_id[:19]}: {rm.stderr.strip()[:200]}")
    log("removed the benchmark stacks, volumes and images")


def summary(variants: dict[str, Variant]) -> dict[str, Any]:
    a, b = variants["A"], variants["B"]
    figures: dict[str, Any] = {}
    for key, _, _ in FIGURES:
        med_a, med_b = statistics.median(a.results[key]), statistics.median(b.results[key])
        figures[key] = {
            "A": a.results[key],
            "B": b.results[key],
            "A_median": med_a,
            "B_median": med_b,
            "ratio_b_over_a": med_b / med_a,
        }
    figures["first_up_s"] = {"A": a.first_up_s, "B": b.first_up_s}
    return figures


def table(figures: dict[str, Any], meta: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"build_redeploy: stacks/fastapi, {meta['rounds']} round(s), order {meta['order']}; "
        f"engine {meta['engine']}, {meta['cpus']} CPUs\n"
    )
    out.write("A = composekit's generated Dockerfile, B = naive Dockerfile (COPY . before pip install)\n\n")
    header = ("figure", "A median", "B median", "B/A", "A min-max", "B min-max")
    rows = [header]
    for key, title, fmt in FIGURES:
        f = figures[key]
        rows.append(
            (
                title,
                fmt.format(f["A_median"]),
                fmt.format(f["B_median"]),
                f"{f['ratio_b_over_a']:.2f}",
                f"{fmt.format(min(f['A']))}-{fmt.format(max(f['A']))}",
                f"{fmt.format(min(f['B']))}-{fmt.format(max(f['B']))}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds, 1 to 20 (default 3)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON instead of the table")
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=1800,
        help="seconds to wait for the ports lock held by integration tests (default 1800)",
    )
    parser.add_argument(
        "--step-timeout", type=float, default=600, help="seconds any single build, up or down may take (default 600)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be from 1 to 20")

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    started = time.monotonic()
    try:
        env = load_env()
        engine = run(["docker", "version", "--format", "{{.Server.Version}}"], REPO, 30).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="composekit-bench-") as tmp:
            variants = {key: make_variant(key, Path(tmp), env, args.step_timeout) for key in VARIANTS}
            with host_ports(args.lock_timeout):
                try:
                    for v in variants.values():  # leftovers of an interrupted run
                        v.down()
                    order: list[str] = []
                    for round_no in range(1, args.rounds + 1):
                        keys = ["A", "B"] if round_no % 2 else ["B", "A"]
                        order.append(" ".join(keys))
                        for key in keys:
                            measure(variants[key], round_no)
                finally:
                    cleanup(list(variants.values()))
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; the benchmark stacks and images were removed")
        return 130
    figures = summary(variants)
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
        table(figures, meta, sys.stdout)
    log(f"done in {meta['seconds_total']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
