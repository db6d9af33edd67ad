"""CPU of one run of the app's healthcheck probe: the rendered one (render/services.py http_probe: a socket in
`python3 -I -S`) against the urllib probe composekit rendered before, side by side in one container.

The engine runs the probe in every app container every 5 s for as long as the stack runs, so its CPU is paid on an
idle server too, once per app. Both probes run in the local python image (COMPOSEKIT_TEST_PYTHON_IMAGE) against a
small HTTP server in the same container on 127.0.0.1, in alternating rounds; each run's CPU is the child's
user + system time (RUSAGE_CHILDREN), so the engine's own cost of an exec (the same for both) is not in it.

    .venv/bin/python benchmarks/healthcheck_probe.py              # 5 rounds of 20 runs each; --rounds, --runs, --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, BenchError, load_env, log, run
from composekit.render.services import http_probe

PORT = 8000
PATH = "/health"
# The probe composekit rendered until 2026-12-04 (the baseline).
URLLIB = [
    "python3",
    "-c",
    f"import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:{PORT}{PATH}', timeout=3).status "
    "== 200 else 1)",
]

# Runs in the container: serves 200 on PORT, runs each probe ``runs`` times a round, prints CPU ms per run as JSON.
DRIVER = """
import http.server, json, resource, subprocess, sys, threading
probes, rounds, runs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
out = {name: [] for name in probes}
for r in range(rounds):
    order = list(probes) if r % 2 == 0 else list(reversed(probes))
    for name in order:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            code = subprocess.run(probes[name]).returncode
            if code != 0:
                sys.exit(f"{name} exited {code}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        out[name].append(used / runs * 1000)
print(json.dumps(out))
""".replace("PORT", str(PORT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="probe runs per round and probe")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    try:
        env = load_env(["COMPOSEKIT_TEST_PYTHON_IMAGE"])
        image = env["COMPOSEKIT_TEST_PYTHON_IMAGE"]
        probes = {"rendered (socket, -I -S)": http_probe(PORT, PATH)[1:], "before (urllib)": URLLIB}
        log(f"{args.rounds} rounds of {args.runs} runs of each probe in {image}")
        timeout = 60 + args.rounds * args.runs * 2.0
        argv = ["docker", "run", "--rm", image, "python3", "-c", DRIVER, json.dumps(probes)]
        done = run([*argv, str(args.rounds), str(args.runs)], REPO, timeout)
    except BenchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    figures: dict[str, list[float]] = json.loads(done.stdout)
    medians = {name: statistics.median(ms) for name, ms in figures.items()}
    rendered, before = medians["rendered (socket, -I -S)"], medians["before (urllib)"]
    if args.json:
        print(json.dumps({"ms_per_run": figures, "median": medians, "ratio": rendered / before}, indent=2))
        return 0
    print(f"{'probe':<26} {'CPU ms per run (median of rounds)':>34}   rounds")
    for name, ms in figures.items():
        print(f"{name:<26} {medians[name]:>34.1f}   {', '.join(f'{v:.1f}' for v in ms)}")
    print(f"rendered / before: {rendered / before:.2f}x the CPU per run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
