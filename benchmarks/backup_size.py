"""`composekit backup` (dump + verification by restore) of a large PostgreSQL database against plain `pg_dump` +
`pg_restore` of the same database, side by side in one run.

One stack of stacks/fastapi-postgres (project bench-backup), deployed with the real CLI against the local test
environment (scripts/setup-env.sh, scripts/pebble.sh), its database filled to --size-mb (default 1024) with one
table of generated rows. Each round measures, in alternating order (A B, then B A):

  A  composekit   `composekit backup`: pg_dump (custom format) in one REPEATABLE READ snapshot with every table's
                  row count, the manifest and checksums, then the verification: pg_restore into a throwaway
                  PostgreSQL, row counts compared, checksums checked (what makes it a *verified* backup)
  B  plain        what a careful operator scripts by hand for the same guarantee of a restorable dump:
                  `pg_dump -Fc` from a container of the database image on the stack's network, then a throwaway
                  PostgreSQL started and `pg_restore` into it (no row counts, no checksums)

and prints each side's seconds, the dump's size, and A/B (the goal: at most 1.2x).

The run holds the integration tests' lock on ports 80/443 (/tmp/composekit-integration.lock) while its stack is
up. It touches only what it creates (project bench-backup, its volumes including bench-backup_backups, the
volume and containers named bench-backup-plain-*), removes them at the end, and prunes nothing global.

    .venv/bin/python benchmarks/backup_size.py                  # 1 GB, 2 rounds
    .venv/bin/python benchmarks/backup_size.py --size-mb 100 --rounds 1  # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, BenchError, host_ports, load_env, log, run

SOURCE = REPO / "stacks" / "fastapi-postgres"
NAME = "bench-backup"
IMAGES = ("COMPOSEKIT_TEST_PYTHON_IMAGE", "COMPOSEKIT_TEST_TRAEFIK_IMAGE", "COMPOSEKIT_TEST_POSTGRES_IMAGE")
PLAIN_VOLUME = f"{NAME}-plain-dumps"
PLAIN_DB = f"{NAME}-plain-restore"
# About this many bytes of table per generated row (id, two md5 strings, 40 bytes of text, tuple overhead);
# the figure printed is the database's real size, measured after the fill.
ROW_BYTES = 150


class Stack:
    def __init__(self, root: Path, env: dict[str, str], step_timeout: float) -> None:
        self.dir = root / NAME
        self.env = env
        self.step_timeout = step_timeout
        shutil.copytree(SOURCE, self.dir, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
        (self.dir / "secrets").mkdir()
        self.password = f"bench-{os.urandom(12).hex()}"
        (self.dir / "secrets" / "db_password").write_text(self.password + "\n")
        overlay = {
            "name": NAME,
            "domain": f"{NAME}.composekit.test",
            "acme": {
                "ca_server": env["COMPOSEKIT_TEST_ACME_DIR"],
                "ca_certificates": [env["COMPOSEKIT_TEST_PEBBLE_CA"]],
            },
            "images": {
                "python": env["COMPOSEKIT_TEST_PYTHON_IMAGE"],
                "traefik": env["COMPOSEKIT_TEST_TRAEFIK_IMAGE"],
                "postgres": env["COMPOSEKIT_TEST_POSTGRES_IMAGE"],
            },
        }
        (self.dir / "local.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
        self.postgres = env["COMPOSEKIT_TEST_POSTGRES_IMAGE"]

    def ck(self, *args: str, check: bool = True, timeout: float | None = None) -> Any:
        cmd = [sys.executable, "-m", "composekit.cli", "-c", "composekit.yaml", "-c", "local.yaml", *args]
        return run(cmd, self.dir, timeout or self.step_timeout, check=check)

    def db_container(self) -> str:
        found = run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={NAME}",
                "--filter",
                "label=com.docker.compose.service=db",
            ],
            self.dir,
            30,
        ).stdout.split()
        if len(found) != 1:
            raise BenchError(f"expected one running db container of {NAME}, found {len(found)}")
        return found[0]

    def psql(self, sql: str, timeout: float) -> str:
        cmd = ["docker", "exec", "-e", f"PGPASSWORD={self.password}", self.db_container()]
        cmd += [
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "notes",
            "-d",
            "notes",
        ]
        return run([*cmd, "-c", sql], self.dir, timeout).stdout.strip()

    def fill(self, size_mb: int) -> int:
        rows = size_mb * 1024 * 1024 // ROW_BYTES
        log(f"filling the database with {rows:,} rows (about {size_mb} MB)")
        self.psql("DROP TABLE IF EXISTS bench_rows", 60)
        self.psql(
            "CREATE TABLE bench_rows AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, "
            f"repeat(chr(97 + g % 26), 40) AS c FROM generate_series(1, {rows}) g",
            self.step_timeout,
        )
        self.psql("ALTER TABLE bench_rows ADD PRIMARY KEY (id)", self.step_timeout)
        self.psql("CHECKPOINT", self.step_timeout)
        return int(self.psql("SELECT pg_database_size('notes')", 60))

    def composekit_backup(self) -> tuple[float, int]:
        """`composekit backup`: seconds, and the dump's size from the manifest."""
        done = self.ck("backup")
        listed = json.loads(self.ck("backups", "--json").stdout)
        newest = max(listed, key=lambda b: b["id"])
        if newest.get("status") != "verified":
            raise BenchError(f"composekit's backup {newest['id']} is {newest.get('status')}, not verified")
        return done.seconds, int(newest["size"])  # the dump's size: this stack archives no volume

    def plain_backup(self) -> tuple[float, int]:
        """pg_dump -Fc, then a throwaway PostgreSQL and pg_restore into it: seconds, and the dump's size."""
        start = time.perf_counter()
        run(["docker", "volume", "create", PLAIN_VOLUME], self.dir, 30)
        run(
            [
                "docker", "run", "--rm", "--network", f"{NAME}_db", "-e", f"PGPASSWORD={self.password}",
                "-v", f"{PLAIN_VOLUME}:/out", "--entrypoint", "pg_dump", self.postgres,
                "-Fc", "-h", "db", "-U", "notes", "-d", "notes", "-f", "/out/plain.dump",
            ],
            self.dir,
            self.step_timeout,
        )  # fmt: skip
        run(
            [
                "docker", "run", "-d", "--name", PLAIN_DB, "-e", "POSTGRES_USER=notes", "-e", "POSTGRES_DB=notes",
                "-e", "POSTGRES_HOST_AUTH_METHOD=trust", "-v", f"{PLAIN_VOLUME}:/out:ro", self.postgres,
            ],
            self.dir,
            60,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            ready = ["docker", "exec", PLAIN_DB, "pg_isready", "-h", "127.0.0.1", "-U", "notes"]
            while "accepting connections" not in run(ready, self.dir, 30, check=False).stdout:
                if time.monotonic() > deadline:
                    raise BenchError("the throwaway PostgreSQL of the plain side did not start within 120 s")
                time.sleep(0.2)
            run(
                ["docker", "exec", PLAIN_DB, "pg_restore", "--exit-on-error", "--no-owner", "--no-acl", "-h",
                 "127.0.0.1", "-U", "notes", "-d", "notes", "/out/plain.dump"],
                self.dir,
                self.step_timeout,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            size = run(["docker", "exec", PLAIN_DB, "stat", "-c", "%s", "/out/plain.dump"], self.dir, 30).stdout
        finally:
            run(["docker", "rm", "-f", "-v", PLAIN_DB], self.dir, 60, check=False)
            run(["docker", "volume", "rm", "-f", PLAIN_VOLUME], self.dir, 60, check=False)
        return seconds, int(size.strip())

    def cleanup(self) -> None:
        run(["docker", "rm", "-f", "-v", PLAIN_DB], self.dir, 60, check=False)
        run(["docker", "volume", "rm", "-f", PLAIN_VOLUME], self.dir, 60, check=False)
        self.ck("down", "--delete-volumes", check=False)
        # composekit keeps the backups volume through `down --delete-volumes` (a user's backups); this one is ours.
        run(["docker", "volume", "rm", "-f", f"{NAME}_backups"], self.dir, 60, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated table (default 1024)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds, 1 to 10 (default 2)")
    parser.add_argument("--json", action="store_true", help="every figure as JSON instead of the table")
    parser.add_argument("--lock-timeout", type=float, default=1800, help="seconds to wait for the ports lock")
    parser.add_argument("--step-timeout", type=float, default=1200, help="seconds any one step may take")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 10 or not 1 <= args.size_mb <= 20480:
        parser.error("--rounds must be 1 to 10 and --size-mb 1 to 20480")

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    started = time.monotonic()
    figures: dict[str, list[float]] = {"A": [], "B": []}
    sizes: dict[str, int] = {}
    try:
        env = load_env(IMAGES)
        with tempfile.TemporaryDirectory(prefix="composekit-bench-") as tmp:
            stack = Stack(Path(tmp), env, args.step_timeout)
            with host_ports(args.lock_timeout):
                try:
                    stack.cleanup()  # leftovers of an interrupted run
                    log("deploying bench-backup (composekit up)")
                    stack.ck("up", "--no-smoke", "-q")
                    db_bytes = stack.fill(args.size_mb)
                    log(f"database size {db_bytes / 1e6:.0f} MB")
                    for round_no in range(1, args.rounds + 1):
                        for key in ("A", "B") if round_no % 2 else ("B", "A"):
                            seconds, size = stack.composekit_backup() if key == "A" else stack.plain_backup()
                            figures[key].append(seconds)
                            sizes[key] = size
                            log(f"round {round_no} {key}: {seconds:.1f} s, dump {size / 1e6:.0f} MB")
                finally:
                    stack.cleanup()
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; the benchmark's stack and volumes were removed")
        return 130
    a, b = statistics.median(figures["A"]), statistics.median(figures["B"])
    result = {
        "database_mb": round(db_bytes / 1e6),
        "rounds": args.rounds,
        "composekit_backup_s": [round(s, 1) for s in figures["A"]],
        "plain_dump_restore_s": [round(s, 1) for s in figures["B"]],
        "composekit_dump_mb": round(sizes.get("A", 0) / 1e6, 1),
        "plain_dump_mb": round(sizes.get("B", 0) / 1e6, 1),
        "ratio": round(a / b, 2),
        "seconds_total": round(time.monotonic() - started),
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print(f"database: {result['database_mb']} MB, {args.rounds} rounds (alternating order), medians")
        print(f"{'':44}{'seconds':>10}{'dump MB':>10}")
        print(f"{'A composekit backup (dump + verification)':44}{a:>10.1f}{result['composekit_dump_mb']:>10}")
        print(f"{'B plain pg_dump -Fc + pg_restore':44}{b:>10.1f}{result['plain_dump_mb']:>10}")
        print(f"A/B: {result['ratio']:.2f}x (goal: at most 1.20x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
