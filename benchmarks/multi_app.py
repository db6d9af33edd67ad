"""Several apps on one engine behind the shared edge (edge: shared): idle memory, `up` time, and app 1's latency
while another app deploys.

Apps mb-1 .. mb-N (N = the largest of --counts; default 1, 5 and 10), each a small FastAPI app with one gunicorn
worker and a memory limit (--memory), are deployed one after another with composekit's own CLI (`composekit up
--no-smoke`; the first creates the edge, project composekit-edge). Per app: the `up` wall time and the time until
it answers 200 over HTTPS. While app 2..N deploys, one client thread sends GET / to app 1 over HTTPS through the
edge (127.0.0.1, Host and SNI = its domain, a pause of --pause s between requests, bounded by --max-seconds): p50/p99
of the 3 s before the deploy and of the deploy itself, and failed requests. When N apps (N in --counts) are up and
have idled --settle s: the memory of every container (cgroup usage minus inactive file cache, what `docker stats`
shows; median of 3 samples), the edge's and the apps' own.

Per extra app it prints: the growth of the total from 1 app, the app's own containers, and the rest (the edge's
growth); the goal is that the rest stays under 5 MiB. The run uses lane 1's ports (1080/1443) and Pebble
(`PEBBLE_LANE=1`) and holds the edge lock and lane 1's from start to end (the engine has one shared edge, which the edge
tests of any lane create and remove), refuses to start beside an existing edge, and removes what it
created: each app (`composekit down --delete-volumes`, its image), then the edge and its volumes.

    .venv/bin/python benchmarks/multi_app.py            # 1, 5 and 10 apps
    .venv/bin/python benchmarks/multi_app.py --quick    # 1 and 3 apps: a check run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_lane import (
    BenchApp,
    EdgeGuard,
    Lane,
    LightLoad,
    down,
    dumps,
    edge_containers,
    lane_arguments,
    lane_lock,
    loadavg,
    log,
    make_app,
    memory_bytes,
    pct,
)

MIB = 1024 * 1024
STEADY = 3.0


def snapshot(apps: list[BenchApp]) -> dict[str, Any]:
    """Memory (MiB) of the edge's containers and of each app's own, median of 3 samples 1 s apart."""
    ids = {f"edge/{service}": cid for service, cid in edge_containers().items()}
    for a in apps:
        for cid in a.containers():
            ids[f"{a.name}/{cid[:12]}"] = cid
    samples: dict[str, list[int]] = {key: [] for key in ids}
    for i in range(3):
        for key, cid in ids.items():
            samples[key].append(memory_bytes(cid))
        if i < 2:
            time.sleep(1)
    mem = {key: statistics.median(values) / MIB for key, values in samples.items()}
    edge = sum(v for k, v in mem.items() if k.startswith("edge/"))
    own = {a.name: sum(v for k, v in mem.items() if k.startswith(f"{a.name}/")) for a in apps}
    return {
        "apps": len(apps),
        "edge_mib": round(edge, 2),
        "edge_traefik_mib": round(mem.get("edge/traefik", 0.0), 2),
        "apps_mib": {k: round(v, 2) for k, v in own.items()},
        "app_containers": {a.name: len(a.containers()) for a in apps},
        "total_mib": round(edge + sum(own.values()), 2),
        "loadavg": loadavg(),
    }


def deploy(apps: list[BenchApp], i: int, args: argparse.Namespace) -> dict[str, Any]:
    """`composekit up` of app i (1-based); from app 2 on, under app 1's light load."""
    new = apps[i - 1]
    if i == 1:
        t0 = time.monotonic()
        new.ck("up", "--no-smoke", timeout=args.step_timeout)
        up = time.monotonic() - t0
        serve = new.wait_serving()
        return {"app": i, "up_s": round(up, 2), "then_serving_s": round(serve, 2), "loadavg": loadavg()}
    with LightLoad(apps[0], pause=args.pause, max_seconds=args.max_seconds) as load:
        time.sleep(STEADY)
        t0 = time.monotonic()
        new.ck("up", "--no-smoke", timeout=args.step_timeout)
        t1 = time.monotonic()
        serve = new.wait_serving()
        time.sleep(1)
    steady = [lat for lat, e in load.window(t0 - STEADY, t0) if e is None]
    during = load.window(t0, t1)
    ok = [lat for lat, e in during if e is None]
    return {
        "app": i,
        "up_s": round(t1 - t0, 2),
        "then_serving_s": round(serve, 2),
        "app1_steady_p50_ms": round(pct(steady, 0.5), 1),
        "app1_steady_p99_ms": round(pct(steady, 0.99), 1),
        "app1_during_p50_ms": round(pct(ok, 0.5), 1),
        "app1_during_p99_ms": round(pct(ok, 0.99), 1),
        "app1_sent_during": len(during),
        "app1_failed": sum(1 for _, e in load.window(0, float("inf")) if e),
        "loadavg": loadavg(),
    }


def report(deploys: list[dict[str, Any]], snaps: list[dict[str, Any]]) -> str:
    lines = [
        "| app | up (s) | then serving (s) | app 1 p50 / p99 before (ms) | app 1 p50 / p99 during (ms) | app 1 failed "
        "/ sent | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in deploys:
        if d["app"] == 1:
            lines.append(f"| 1 | {d['up_s']:.1f} | {d['then_serving_s']:.1f} | - | - | - | {d['loadavg']} |")
            continue
        lines.append(
            f"| {d['app']} | {d['up_s']:.1f} | {d['then_serving_s']:.1f} | {d['app1_steady_p50_ms']:.0f} / "
            f"{d['app1_steady_p99_ms']:.0f} | {d['app1_during_p50_ms']:.0f} / {d['app1_during_p99_ms']:.0f} | "
            f"{d['app1_failed']} / {d['app1_sent_during']} | {d['loadavg']} |"
        )
    lines += [
        "",
        "| apps | edge (MiB) | edge Traefik (MiB) | apps' own (MiB) | total (MiB) | per extra app: total growth | "
        "its own containers | rest (edge) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = snaps[0]
    for s in snaps:
        own = sum(s["apps_mib"].values())
        if s["apps"] == base["apps"]:
            lines.append(
                f"| {s['apps']} | {s['edge_mib']:.1f} | {s['edge_traefik_mib']:.1f} | {own:.1f} | "
                f"{s['total_mib']:.1f} | - | - | - |"
            )
            continue
        extra = s["apps"] - base["apps"]
        growth = (s["total_mib"] - base["total_mib"]) / extra
        extra_apps = list(s["apps_mib"])[base["apps"] :]
        own_extra = sum(s["apps_mib"][a] for a in extra_apps) / extra
        lines.append(
            f"| {s['apps']} | {s['edge_mib']:.1f} | {s['edge_traefik_mib']:.1f} | {own:.1f} | {s['total_mib']:.1f} | "
            f"{growth:.1f} | {own_extra:.1f} | {growth - own_extra:+.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    lane_arguments(parser)
    parser.add_argument(
        "--counts", default="1,5,10", help="app counts to measure memory at (deploys up to the largest)"
    )
    parser.add_argument("--quick", action="store_true", help="a check run: --counts 1,3 --settle 5")
    parser.add_argument("--memory", default="192m", help="each app's memory limit (app/memory)")
    parser.add_argument("--settle", type=float, default=15, help="idle seconds before a memory snapshot")
    parser.add_argument("--pause", type=float, default=0.02, help="app 1's client: pause between requests (s)")
    parser.add_argument("--max-seconds", type=float, default=300, help="bound of app 1's load per deploy")
    parser.add_argument("--step-timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.counts, args.settle = "1,3", 5.0
    counts = sorted({int(c) for c in args.counts.split(",")})
    with (
        lane_lock(args.lock, args.lock_timeout, args.pebble_lane),
        tempfile.TemporaryDirectory(prefix="multi-app-") as tmp,
    ):
        lane = Lane.start(args)
        apps = [make_app(Path(tmp), f"mb-{i}", lane, workers=1, memory=args.memory) for i in range(1, counts[-1] + 1)]
        deploys: list[dict[str, Any]] = []
        snaps: list[dict[str, Any]] = []
        deployed: list[BenchApp] = []
        with EdgeGuard(apps[0]):
            try:
                for i in range(1, len(apps) + 1):
                    log(f"up of app {i} (load average {loadavg()})")
                    deployed.append(apps[i - 1])
                    deploys.append(deploy(apps, i, args))
                    log(dumps(deploys[-1]))
                    if i in counts:
                        time.sleep(args.settle)
                        snaps.append(snapshot(apps[:i]))
                        log(dumps(snaps[-1]))
            finally:
                log("taking the apps down")
                down(deployed)
    print(dumps({"deploys": deploys, "memory": snaps}) if args.json else report(deploys, snaps))


if __name__ == "__main__":
    main()
