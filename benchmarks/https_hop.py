"""The shared edge's HTTPS hop: throughput through the edge's Traefik against plain HTTP straight to the app's gunicorn.

One app (hop-1: a small FastAPI app, --workers gunicorn workers, default 2) deployed with `edge: shared` by
composekit's own CLI; its `composekit.override.yaml`, written by this script for the benchmark only, also publishes
the app's port on 127.0.0.1:--direct-port. Then --rounds rounds, each running wrk (--threads threads,
--connections connections, --seconds s) against both, in alternating order (direct first in odd rounds, the edge
first in even ones), so both sides see the same load from whatever else runs on the machine:

  edge    https://127.0.0.1:<https port>/ with Host: the app's domain (wrk sends no SNI to an address; Traefik then
          presents its default certificate, which wrk does not check: the handshake is once per connection)
  direct  http://127.0.0.1:<direct port>/

Printed per round: requests/s of each, their ratio (edge / direct), and where the CPU went per request (ms of CPU
per request: the edge's Traefik, the app container, the engine's docker-proxy processes, dockerd, wrk itself; cgroup
and /proc counters read before and after each wrk run), and the load average. Non-2xx answers or socket errors in
a wrk run fail the run. Holds the lane's lock (default lane 1: 1080/1443) from start to end, refuses to start beside
an existing edge, and takes down what it created.

    .venv/bin/python benchmarks/https_hop.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

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

CLK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: str) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _pids(comm: str) -> list[str]:
    """Processes by their command name, to read their CPU counters (nothing is signalled)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == comm:
                    found.append(d.name)
            except OSError:
                continue
    return found


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

    def accepted(self) -> int:
        return passive_opens(self.app_pid)

    def read(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "traefik": cpu_seconds(self.traefik),
            "app": sum(cpu_seconds(c) for c in self.app),
            "docker-proxy": sum(_proc_cpu(p) for p in _pids("docker-proxy")),
            "dockerd": sum(_proc_cpu(p) for p in _dockerd()),
            "wrk": children.ru_utime + children.ru_stime,
        }


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
        url, host = f"https://127.0.0.1:{app.lane.https_port}/", app.domain
    else:
        url, host = f"http://127.0.0.1:{args.direct_port}/", None
    before, opened = cpu.read(), cpu.accepted()
    row = wrk(url, args, host)
    after = cpu.read()
    n = max(1, row["requests"])
    # Direct: wrk's own connections; through the edge: Traefik's to the app, few when it keeps them alive.
    row["app_accepted_connections"] = cpu.accepted() - opened
    row["cpu_ms_per_request"] = {k: round((after[k] - before[k]) * 1000 / n, 3) for k in before}
    row["loadavg"] = loadavg()
    return row


def report(rounds: list[dict[str, Any]]) -> str:
    lines = [
        "| round | order | direct (req/s) | edge HTTPS (req/s) | edge / direct | connections the app accepted "
        "(direct / edge) | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round']} | {r['order']} | {r['direct']['rps']:,.0f} | {r['edge']['rps']:,.0f} | "
            f"{r['ratio']:.2f} | {r['direct']['app_accepted_connections']} / {r['edge']['app_accepted_connections']} | "
            f"{r['edge']['loadavg']} |"
        )
    ratios = [r["ratio"] for r in rounds]
    lines.append(
        f"\nedge / direct: median {statistics.median(ratios):.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
        f"medians {statistics.median(r['edge']['rps'] for r in rounds):,.0f} vs "
        f"{statistics.median(r['direct']['rps'] for r in rounds):,.0f} requests/s"
    )
    parts = list(rounds[0]["edge"]["cpu_ms_per_request"])
    lines += ["", "| CPU ms per request (median) | " + " | ".join(parts) + " |", "|---|" + "---|" * len(parts)]
    for side in ("direct", "edge"):
        med = {p: statistics.median(r[side]["cpu_ms_per_request"][p] for r in rounds) for p in parts}
        lines.append(f"| {side} | " + " | ".join(f"{med[p]:.3f}" for p in parts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    lane_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--direct-port", type=int, default=18000, help="the app's port published on 127.0.0.1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    override = {"services": {"app": {"ports": [f"127.0.0.1:{args.direct_port}:8000"]}}}
    rounds: list[dict[str, Any]] = []
    with lane_lock(args.lock, args.lock_timeout), tempfile.TemporaryDirectory(prefix="https-hop-") as tmp:
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
                warm = argparse.Namespace(**{**vars(args), "seconds": 2})
                for side in ("direct", "edge"):
                    measure(side, app, cpu, warm)
                for n in range(1, args.rounds + 1):
                    order = ("direct", "edge") if n % 2 else ("edge", "direct")
                    row: dict[str, Any] = {"round": n, "order": " then ".join(order)}
                    for side in order:
                        row[side] = measure(side, app, cpu, args)
                        log(f"round {n} {side}: {row[side]}")
                    row["ratio"] = round(row["edge"]["rps"] / row["direct"]["rps"], 3)
                    rounds.append(row)
            finally:
                down([app])
    print(dumps(rounds) if args.json else report(rounds))


if __name__ == "__main__":
    main()
