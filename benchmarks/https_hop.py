"""The shared edge's HTTPS hop: throughput through the edge's Traefik against plain HTTP straight to the app's gunicorn.

One app (hop-1: a small FastAPI app, --workers gunicorn workers, default 2) deployed with `edge: shared` by
composekit's own CLI; its `composekit.override.yaml`, written by this script for the benchmark only, also publishes
the app's port on 127.0.0.1:--direct-port. Then --rounds rounds, each running wrk (--threads threads,
--connections connections, --seconds s) against both, in alternating order (direct first in odd rounds, the edge
first in even ones), so both sides see the same load from whatever else runs on the machine:

  edge    https://127.0.0.1:<https port>/ with Host: the app's domain (wrk sends no SNI to an address; Traefik then
          presents its default certificate, which wrk does not check: the handshake is once per connection)
  direct  http://127.0.0.1:<direct port>/

--path /work/N asks for an endpoint that spends N microseconds of the worker's CPU before the same answer (an app
that does work, where / does almost none).

With --variants, Traefiks of the benchmark's own run beside the edge, each published on its own 127.0.0.1 port
(from --variant-port) and joined to the app's `web` network, with the edge's own traefik.yml and routes files (read
from the running edge) changed one way each, and take their turn in every round:

  copy           unchanged but for the certificates (no ACME resolver: Traefik's default certificate): the control
  no-access-log  accessLog removed from traefik.yml
  access-log-buffered  accessLog.bufferingSize: 100 (lines written by a goroutine of their own, not the request's)
  access-log-not-2xx   accessLog.filters.statusCodes: every status but 2xx (the app's gunicorn logs those itself)
  access-log-all       accessLog: {} (every request logged, as the edge was rendered before 2026-12-04; it now
                       logs every answer but a fast 2xx: render/traefik.py access_log)
  gomaxprocs-1   GOMAXPROCS=1 in the environment (Go otherwise runs as many threads as the host has CPUs, or as
                 the container's CPU limit allows)
  gogc-400       GOGC=400 (collect garbage less often)
  no-backend-reuse  serversTransport.maxIdleConnsPerHost: -1 (a new connection to the app per request, which
                 the app's idle worker accepts; no keep-alive to the backend)
  minimal        Traefik's floor here: the websecure entrypoint and the app's routers only (no middlewares, no
                 access log, no drain, no lifeCycle), GOMAXPROCS=1

Printed per round: requests/s of each, their ratio (edge / direct), and where the CPU went per request (ms of CPU
per request: the edge's Traefik, the app container, the engine's docker-proxy processes, dockerd, wrk itself; cgroup
and /proc counters read before and after each wrk run), how the app's CPU split between gunicorn's workers (each
keeps the connections it accepted: when one worker accepts all of wrk's connections, the others idle), and the load
average. Then what the CPU per request predicts when the cores are the limit (a side's throughput over direct's =
direct's CPU per request over the side's), and how much the 0.8x target leaves the hop. Non-2xx answers or socket
errors in a wrk run fail the run. Uses lane 1's ports (1080/1443) and Pebble, holds the edge lock and lane 1's from
start to end (the engine has one shared edge, which the edge tests of any lane create and remove), refuses to start
beside an existing edge, and takes down what it created.

    .venv/bin/python benchmarks/https_hop.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from edge_lane import (
    BenchApp,
    EdgeGuard,
    Lane,
    cpu_seconds,
    down,
    dumps,
    edge_containers,
    lane_arguments,
    lane_lock,
    loadavg,
    log,
    make_app,
    run,
)

from composekit.render.edge import EDGE_FILE

CLK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3, the state, is [0])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _proc_cpu(pid: str) -> float:
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _processes(match: Callable[[str], bool]) -> list[str]:
    """The pids for which ``match(pid)`` holds, in pid order; processes that exit meanwhile are skipped. Only read:
    nothing is signalled."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if match(d.name):
                    found.append(d.name)
            except OSError:
                continue
    return sorted(found, key=int)


def _pids(comm: str) -> list[str]:
    """Processes by their command name, to read their CPU counters."""
    return _processes(lambda pid: Path(f"/proc/{pid}/comm").read_text().strip() == comm)


def _children(parent: str) -> list[str]:
    return _processes(lambda pid: _stat(pid)[1] == parent)  # field 4: the parent's pid


def _dockerd() -> list[str]:
    """The engine's dockerd (the one whose socket the docker CLI uses: no -H of its own)."""
    out = []
    for pid in _pids("dockerd"):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        except OSError:
            continue
        if not any(a.startswith(("-H", "--host")) for a in argv):
            out.append(pid)
    return out


def passive_opens(pid: str) -> int:
    """TCP connections accepted in the network namespace of process ``pid`` so far (its /proc/PID/net/snmp)."""
    lines = [line.split() for line in Path(f"/proc/{pid}/net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


class Cpu:
    """CPU seconds per part, read before and after a wrk run, and the connections the app accepted meanwhile."""

    def __init__(self, traefik: str, app: list[str], app_pid: str) -> None:
        self.traefik, self.app, self.app_pid = traefik, app, app_pid
        self.variants: list[str] = []

    def accepted(self) -> int:
        return passive_opens(self.app_pid)

    def workers(self) -> dict[str, float]:
        """CPU seconds of each of gunicorn's workers (the children of the container's first process, its master)."""
        return {pid: _proc_cpu(pid) for pid in _children(self.app_pid)}

    def read(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "traefik": cpu_seconds(self.traefik) + sum(cpu_seconds(v) for v in self.variants),
            "app": sum(cpu_seconds(c) for c in self.app),
            "docker-proxy": sum(_proc_cpu(p) for p in _pids("docker-proxy")),
            "dockerd": sum(_proc_cpu(p) for p in _dockerd()),
            "wrk": children.ru_utime + children.ru_stime,
        }


def _no_acme(static: dict[str, Any]) -> dict[str, Any]:
    static.pop("certificatesResolvers", None)
    for entry in static.get("entryPoints", {}).values():
        entry.get("http", {}).pop("tls", None)
    static["providers"] = {"file": {"directory": "/etc/traefik/dynamic", "watch": False}}
    return static


def _no_access_log(static: dict[str, Any]) -> dict[str, Any]:
    static.pop("accessLog", None)
    return static


def _access_log_all(static: dict[str, Any]) -> dict[str, Any]:
    static["accessLog"] = {}
    return static


def _access_log_not_2xx(static: dict[str, Any]) -> dict[str, Any]:
    static["accessLog"] = {**static.get("accessLog", {}), "filters": {"statusCodes": ["100-199", "300-599"]}}
    return static


def _buffered_access_log(static: dict[str, Any]) -> dict[str, Any]:
    static["accessLog"] = {**static.get("accessLog", {}), "bufferingSize": 100}
    return static


def _minimal(static: dict[str, Any]) -> dict[str, Any]:
    """Only what proxies HTTPS: the websecure entrypoint (no middlewares, drain or lifeCycle), the file provider, no
    access log, no ping."""
    entry = static["entryPoints"]["websecure"]
    return {
        "global": static.get("global", {}),
        "log": {"level": "ERROR"},
        "entryPoints": {"websecure": {"address": entry["address"], "http": {"tls": {}}}},
        "providers": static["providers"],
    }


def _routes_minimal(doc: dict[str, Any]) -> dict[str, Any]:
    """The app's routers without their middlewares (security headers, the probe's header), none of the edge's own."""
    http = doc.get("http", {})
    http.pop("middlewares", None)
    for router in http.get("routers", {}).values():
        router.pop("middlewares", None)
    return doc


def _no_backend_reuse(static: dict[str, Any]) -> dict[str, Any]:
    static.setdefault("serversTransport", {})["maxIdleConnsPerHost"] = -1
    return static


def _same(doc: dict[str, Any]) -> dict[str, Any]:
    return doc


@dataclass(frozen=True)
class Variant:
    static: Callable[[dict[str, Any]], dict[str, Any]] = _same  # change to the edge's traefik.yml
    env: dict[str, str] = field(default_factory=dict)
    routes: Callable[[dict[str, Any]], dict[str, Any]] = _same  # change to each routes file
    edge_file: bool = True  # the edge's own file (its drain middlewares and TLS options) as well as the apps'


VARIANTS: dict[str, Variant] = {
    "copy": Variant(),
    "no-access-log": Variant(_no_access_log),
    "access-log-buffered": Variant(_buffered_access_log),
    "access-log-not-2xx": Variant(_access_log_not_2xx),
    "access-log-all": Variant(_access_log_all),
    "gomaxprocs-1": Variant(env={"GOMAXPROCS": "1"}),
    "gogc-400": Variant(env={"GOGC": "400"}),
    "minimal": Variant(_minimal, {"GOMAXPROCS": "1"}, _routes_minimal, edge_file=False),
    "no-backend-reuse": Variant(_no_backend_reuse),
}
VARIANT_PREFIX = "https-hop-variant-"


def _routes_without_acme(text: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    doc = yaml.safe_load(text) or {}
    for router in doc.get("http", {}).get("routers", {}).values():
        if "tls" in router:
            router["tls"] = {}
    return yaml.safe_dump(change(doc), sort_keys=False)


def start_variants(names: list[str], app: BenchApp, first_port: int, root: Path) -> dict[str, int]:
    """The variant Traefiks (containers named VARIANT_PREFIX + name): variant -> its published port."""
    edge = edge_containers()
    static = yaml.safe_load(run(["docker", "exec", edge["traefik"], "cat", "/etc/traefik/traefik.yml"]))
    listing = run(["docker", "exec", edge["routes"], "ls", "/routes"]).split()
    routes = {n: run(["docker", "exec", edge["routes"], "cat", f"/routes/{n}"]) for n in listing if n.endswith(".yml")}
    image = run(["docker", "inspect", "--format", "{{.Config.Image}}", edge["traefik"]]).strip()
    ports: dict[str, int] = {}
    for i, name in enumerate(names):
        variant = VARIANTS[name]
        d = root / f"variant-{name}"
        (d / "dynamic").mkdir(parents=True)
        (d / "traefik.yml").write_text(yaml.safe_dump(variant.static(_no_acme(json_copy(static))), sort_keys=False))
        for file, text in routes.items():
            if file == EDGE_FILE and not variant.edge_file:
                continue
            (d / "dynamic" / file).write_text(_routes_without_acme(text, variant.routes))
        port = first_port + i
        argv = ["docker", "run", "-d", "--name", VARIANT_PREFIX + name, "--network", f"{app.name}_web"]
        argv += ["-p", f"127.0.0.1:{port}:443", "-v", f"{d}:/etc/traefik:ro", "--cap-drop", "ALL"]
        argv += ["--cap-add", "NET_BIND_SERVICE", "--security-opt", "no-new-privileges:true"]
        for k, v in variant.env.items():
            argv += ["-e", f"{k}={v}"]
        run([*argv, image, "--configFile=/etc/traefik/traefik.yml"])
        ports[name] = port
    return ports


def stop_variants(names: list[str]) -> None:
    for name in names:
        subprocess.run(["docker", "rm", "-f", VARIANT_PREFIX + name], capture_output=True, timeout=60, check=False)


def json_copy(doc: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = yaml.safe_load(yaml.safe_dump(doc))
    return copied


def wrk(url: str, args: argparse.Namespace, host: str | None) -> dict[str, Any]:
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds:g}s", "--timeout", "5s"]
    if host:
        argv += ["-H", f"Host: {host}"]
    out = run([*argv, url], timeout=args.seconds + 60)
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"([0-9]+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if rps is None or total is None:
        raise SystemExit(f"wrk said:\n{out}")
    if bad or errors:
        raise SystemExit(f"wrk against {url} saw failures (the figures would mean nothing):\n{out}")
    return {"rps": float(rps.group(1)), "requests": int(total.group(1))}


def measure(side: str, app: BenchApp, cpu: Cpu, args: argparse.Namespace) -> dict[str, Any]:
    if side == "edge":
        url, host = f"https://127.0.0.1:{app.lane.https_port}{args.path}", app.domain
    elif side == "direct":
        url, host = f"http://127.0.0.1:{args.direct_port}{args.path}", None
    else:
        url, host = f"https://127.0.0.1:{args.ports[side]}{args.path}", app.domain
    before, opened, workers = cpu.read(), cpu.accepted(), cpu.workers()
    row = wrk(url, args, host)
    after, workers_after = cpu.read(), cpu.workers()
    n = max(1, row["requests"])
    # How the load split between gunicorn's workers: each worker's share of their CPU in the run. Each keeps the
    # connections it accepted, so a burst of new connections accepted by one worker leaves the others idle.
    spent = {pid: workers_after[pid] - workers[pid] for pid in workers if pid in workers_after}
    row["worker_shares"] = [round(100 * v / (sum(spent.values()) or 1)) for v in spent.values()]
    # Direct: wrk's own connections; through the edge: Traefik's to the app, few when it keeps them alive.
    row["app_accepted_connections"] = cpu.accepted() - opened
    row["cpu_ms_per_request"] = {k: round((after[k] - before[k]) * 1000 / n, 3) for k in before}
    row["loadavg"] = loadavg()
    return row


def report(rounds: list[dict[str, Any]], sides: list[str]) -> str:
    lines = [
        "| round | order | "
        + " | ".join(f"{side} (req/s)" for side in sides)
        + " | edge / direct | workers' CPU shares, % (direct; edge) | load avg |",
        "|---|---|" + "---|" * len(sides) + "---|---|---|",
    ]
    for r in rounds:
        shares = "; ".join("/".join(str(x) for x in r[side]["worker_shares"]) for side in ("direct", "edge"))
        lines.append(
            f"| {r['round']} | {r['order']} | "
            + " | ".join(f"{r[side]['rps']:,.0f}" for side in sides)
            + f" | {r['edge']['rps'] / r['direct']['rps']:.2f} | {shares} | {r['edge']['loadavg']} |"
        )
    parts = list(rounds[0]["edge"]["cpu_ms_per_request"])
    lines += [
        "",
        "| side | median req/s | / direct (median of the rounds' ratios) | per round | connections the app accepted | "
        + " | ".join(f"CPU ms/request: {p}" for p in parts)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(parts),
    ]
    cpu = {
        side: {p: statistics.median(r[side]["cpu_ms_per_request"][p] for r in rounds) for p in parts} for side in sides
    }
    for side in sides:
        ratios = [r[side]["rps"] / r["direct"]["rps"] for r in rounds]
        accepted = ", ".join(str(r[side]["app_accepted_connections"]) for r in rounds)
        lines.append(
            f"| {side} | {statistics.median(r[side]['rps'] for r in rounds):,.0f} | "
            f"{statistics.median(ratios):.2f} | {', '.join(f'{x:.2f}' for x in ratios)} | {accepted} | "
            + " | ".join(f"{cpu[side][p]:.3f}" for p in parts)
            + " |"
        )
    lines += ["", *one_sided(rounds, sides), "", *budget(cpu, sides)]
    return "\n".join(lines)


def lopsided(shares: list[int]) -> bool:
    """A run in which a gunicorn worker did less than a quarter of its even share (it had few or none of the
    connections, so its core served other processes, not the app)."""
    return bool(shares) and min(shares) < 25 / len(shares)


def one_sided(rounds: list[dict[str, Any]], sides: list[str]) -> list[str]:
    """The rounds whose direct run left a worker (nearly) idle, and each side's ratio over the other rounds: with one
    worker serving all of wrk's connections, direct measures half of gunicorn's capacity, not the whole."""
    skewed = [r["round"] for r in rounds if lopsided(r["direct"]["worker_shares"])]
    if not skewed:
        return ["In every direct run each gunicorn worker did at least a quarter of its even share."]
    lines = [
        f"Direct runs with a worker (nearly) idle: round(s) {', '.join(map(str, skewed))} (its workers had "
        "accepted wrk's connections unevenly, and each keeps the connections it accepted)."
    ]
    even = [r for r in rounds if r["round"] not in skewed]
    if not even:
        return [*lines, "No round had a direct run with every worker busy: run more rounds for a ratio."]
    for side in sides[1:]:
        ratios = [r[side]["rps"] / r["direct"]["rps"] for r in even]
        lines.append(f"- {side} / direct over the other {len(even)} round(s): median {statistics.median(ratios):.2f}")
    return lines


def budget(cpu: dict[str, dict[str, float]], sides: list[str]) -> list[str]:
    """What the CPU per request predicts when the cores are what limits the throughput (wrk, Traefik and gunicorn on
    the same cores): a side's throughput over direct's is direct's CPU per request over the side's, so the target
    of 0.8x leaves the hop (all that a side costs more than direct, Traefik's own CPU included) at most a quarter of
    direct's CPU per request."""
    direct = sum(cpu["direct"].values())
    lines = [
        f"CPU per request, all parts: direct {direct:.3f} ms; at 0.8x of direct the hop may add at most "
        f"{direct / 0.8 - direct:.3f} ms (a quarter of direct's)."
    ]
    for side in sides[1:]:
        total = sum(cpu[side].values())
        lines.append(
            f"- {side}: {total:.3f} ms, the hop adds {total - direct:.3f} (Traefik's own {cpu[side]['traefik']:.3f}, "
            f"the app {cpu[side]['app'] - cpu['direct']['app']:+.3f}); predicted / direct: {direct / total:.2f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    lane_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--direct-port", type=int, default=18000, help="the app's port published on 127.0.0.1")
    parser.add_argument("--variants", default="", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--variant-port", type=int, default=1453, help="the first variant's port on 127.0.0.1")
    parser.add_argument(
        "--path",
        default="/",
        help="what wrk asks for: / (a small JSON answer) or /work/N (N microseconds of the worker's CPU first)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not re.fullmatch(r"/|/work/[0-9]+", args.path):
        raise SystemExit(f"--path {args.path}: the app answers / and /work/N (N microseconds of CPU)")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk, the load generator, is not installed: apt-get install wrk")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    sides = ["direct", "edge", *variants]
    override = {"services": {"app": {"ports": [f"127.0.0.1:{args.direct_port}:8000"]}}}
    rounds: list[dict[str, Any]] = []
    with (
        lane_lock(args.lock, args.lock_timeout, args.pebble_lane),
        tempfile.TemporaryDirectory(prefix="https-hop-") as tmp,
    ):
        lane = Lane.start(args)
        app = make_app(Path(tmp), "hop-1", lane, workers=args.workers, memory=None, override=override)
        with EdgeGuard(app):
            try:
                log("up")
                app.ck("up", "--no-smoke")
                app.wait_serving()
                app_id = run(["docker", "compose", "-p", app.name, "ps", "-q", "app"]).split()[0]
                app_pid = run(["docker", "inspect", "--format", "{{.State.Pid}}", app_id]).strip()
                cpu = Cpu(edge_containers()["traefik"], app.containers(), app_pid)
                args.ports = start_variants(variants, app, args.variant_port, Path(tmp))
                cpu.variants = [
                    run(["docker", "inspect", "--format", "{{.Id}}", VARIANT_PREFIX + v]).strip() for v in variants
                ]
                time.sleep(3 if variants else 0)
                warm = argparse.Namespace(**{**vars(args), "seconds": 2})
                for side in sides:
                    measure(side, app, cpu, warm)
                log(f"load average {loadavg()}")
                for n in range(1, args.rounds + 1):
                    order = sides if n % 2 else sides[::-1]
                    row: dict[str, Any] = {"round": n, "order": " ".join(order)}
                    for side in order:
                        row[side] = measure(side, app, cpu, args)
                        log(f"round {n} {side}: {row[side]}")
                    rounds.append(row)
            finally:
                stop_variants(variants)
                down([app])
    print(dumps(rounds) if args.json else report(rounds, sides))


if __name__ == "__main__":
    main()
