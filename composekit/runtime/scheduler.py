"""composekit's scheduler: runs schedules/ (cron expression -> command of the app's image) in the stack's one
`scheduler` container. The standard library and cronsim only: cronsim's module is delivered beside this file in the
files volume (render/companions.py), the same library that checked the expressions when the config was loaded.

Exactly one: the scheduler holds an exclusive flock on a file of its own volume for its whole life, so a second one
(started by hand, or while the old one still stops) waits for the first to exit before it runs anything.

Never skipped, never doubled: each job's last scheduled time that was started is written to the state file BEFORE the
command starts. A job is due when a scheduled time lies after that time and not after now; it then runs once, for the
newest such time (a gap of several scheduled times, such as a redeploy or a stopped scheduler, gives one catch-up run,
not one per missed time). A job that is still running when its next time comes runs again once it has finished.

Visible: state.json holds, per job, the last run (scheduled time, start, end, exit code, timed out, the last lines of
its output) and the next time; every output line goes to the scheduler's stdout prefixed with the job's name
(`composekit logs scheduler`). A run exceeding its timeout gets SIGTERM, then SIGKILL 10 s later, and is recorded as
timed out. On SIGTERM the scheduler starts nothing more and waits for the running jobs (its stop grace covers the
longest timeout).

Each run gets COMPOSEKIT_SCHEDULE (its name) and COMPOSEKIT_SCHEDULED_AT (the scheduled time it stands for, ISO 8601
UTC) in its environment.

Usage: python scheduler.py STATE_DIR JOBS_JSON, JOBS_JSON = {name: {"cron": ..., "argv": [...], "timeout": seconds}}.
Times are UTC."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from cronsim import CronSim

STATE_FILE = "state.json"
LOCK_FILE = "scheduler.lock"
TAIL_LINES = 20
KILL_AFTER = 10.0
MAX_SLEEP = 30.0


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds")


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def next_time(cron: str, after: datetime) -> datetime:
    """The first scheduled time strictly after ``after``."""
    return next(iter(CronSim(cron, after)))


def newest_time(cron: str, now: datetime) -> datetime:
    """The newest scheduled time at or before ``now``."""
    return next(iter(CronSim(cron, now + timedelta(seconds=1), reverse=True)))


def run_environment(job: Job, scheduled: datetime) -> dict[str, str]:
    """What a run gets besides the scheduler's environment (the app's): its name and the time it was scheduled for
    (not when it started: a catch-up run knows which time it stands for)."""
    return {"COMPOSEKIT_SCHEDULE": job.name, "COMPOSEKIT_SCHEDULED_AT": _iso(scheduled) or "", "PYTHONUNBUFFERED": "1"}


class Job:
    def __init__(self, name: str, cron: str, argv: list[str], timeout: float) -> None:
        self.name, self.cron, self.argv, self.timeout = name, cron, argv, timeout


def parse_jobs(text: str) -> list[Job]:
    raw = json.loads(text)
    return [Job(n, j["cron"], list(j["argv"]), float(j["timeout"])) for n, j in sorted(raw.items())]


def acquire_lock(state_dir: str, log: Callable[[str], None], wait: bool = True) -> IO[str] | None:
    """The exclusive lock of the scheduler's volume; blocks while another scheduler holds it (``wait``), else None."""
    handle = open(os.path.join(state_dir, LOCK_FILE), "a")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            handle.close()
            return None
        log("scheduler: another scheduler holds the lock; waiting for it to stop")
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


class Scheduler:
    """The schedule's logic with the clock and the process runner given (tests pass a fake clock)."""

    def __init__(
        self,
        jobs: list[Job],
        state_dir: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        log: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.state_dir = state_dir
        self.now = now
        self.log = log
        self.lock = threading.Lock()
        self.running: dict[str, threading.Thread] = {}
        self.state: dict[str, Any] = self._read()
        started = now()
        for name in self.jobs:
            entry = self.state["jobs"].setdefault(name, {})
            # A new job starts counting now: nothing before its first scheduler start is missed.
            entry.setdefault("last_scheduled", _iso(started))
            last = entry.get("last_run")
            if last is not None and last.get("ended") is None:
                last.update(ended=_iso(started), exit_code=None, interrupted=True)
                self.log(f"{name} | (the run scheduled for {last['scheduled']} was interrupted: the scheduler stopped)")
        self._update_next()
        self._write()

    def _read(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.state_dir, STATE_FILE)) as f:
                state: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            state = {}
        state.setdefault("jobs", {})
        return state

    def _write(self) -> None:
        path = os.path.join(self.state_dir, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _update_next(self) -> None:
        for name, job in self.jobs.items():
            entry = self.state["jobs"][name]
            entry["next"] = _iso(next_time(job.cron, _parse(entry["last_scheduled"]) or self.now()))

    def due(self, now: datetime) -> list[tuple[Job, datetime]]:
        """The runs to start at ``now``: for each job not running, its newest scheduled time after its last one."""
        out = []
        for name, job in self.jobs.items():
            if name in self.running:
                continue
            last = _parse(self.state["jobs"][name]["last_scheduled"])
            newest = newest_time(job.cron, now)
            if last is None or newest > last:
                out.append((job, newest))
        return out

    def wake_at(self, now: datetime) -> datetime:
        """When to look again: the soonest next time of the jobs (bounded, so a changed clock is noticed)."""
        soonest = min(
            (next_time(j.cron, _parse(self.state["jobs"][n]["last_scheduled"]) or now) for n, j in self.jobs.items()),
            default=now + timedelta(seconds=MAX_SLEEP),
        )
        return min(max(soonest, now), now + timedelta(seconds=MAX_SLEEP))

    def start(self, job: Job, scheduled: datetime) -> threading.Thread:
        """Record the run as started (before the command starts: a crash never runs it twice), then run it."""
        with self.lock:
            entry = self.state["jobs"][job.name]
            entry["last_scheduled"] = _iso(scheduled)
            entry["last_run"] = {"scheduled": _iso(scheduled), "started": _iso(self.now()), "ended": None}
            self._update_next()
            self._write()
        thread = threading.Thread(target=self._run, args=(job, scheduled), name=job.name, daemon=True)
        self.running[job.name] = thread
        thread.start()
        return thread

    def _run(self, job: Job, scheduled: datetime) -> None:
        self.log(f"{job.name} | started (scheduled for {_iso(scheduled)}): {' '.join(job.argv)}")
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        timed_out = threading.Event()
        try:
            proc = subprocess.Popen(
                job.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a timeout stops the whole group
                text=True,
                errors="replace",
                env={**os.environ, **run_environment(job, scheduled)},
            )
        except OSError as exc:
            tail.append(f"could not start {job.argv[0]}: {exc}")
            self.log(f"{job.name} | {tail[-1]}")
            code: int | None = 127
        else:

            def expire() -> None:
                timed_out.set()
                self.log(f"{job.name} | timed out after {job.timeout:g} s: stopping it")
                _signal(proc, signal.SIGTERM)
                threading.Timer(KILL_AFTER, _signal, (proc, signal.SIGKILL)).start()

            timer = threading.Timer(job.timeout, expire)
            timer.start()
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                self.log(f"{job.name} | {line}")
            code = proc.wait()
            timer.cancel()
        self.log(f"{job.name} | exited {code}" + (" (timed out)" if timed_out.is_set() else ""))
        with self.lock:
            run = self.state["jobs"][job.name]["last_run"]
            run.update(ended=_iso(self.now()), exit_code=code, timed_out=timed_out.is_set(), output=list(tail))
            self._write()
            self.running.pop(job.name, None)


def _signal(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def main(argv: list[str]) -> int:
    state_dir, jobs = argv[0], parse_jobs(argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    handle = acquire_lock(state_dir, log)
    assert handle is not None
    scheduler = Scheduler(jobs, state_dir, log=log)
    log(f"scheduler: {len(jobs)} job(s): " + ", ".join(f"{j.name} ({j.cron})" for j in jobs))
    while not stop.is_set():
        now = scheduler.now()
        for job, scheduled in scheduler.due(now):
            scheduler.start(job, scheduled)
        wait = (scheduler.wake_at(now) - scheduler.now()).total_seconds()
        stop.wait(max(wait, 0.2))
    running = list(scheduler.running.values())
    if running:
        log(f"scheduler: stopping; waiting for {', '.join(t.name for t in running)} to finish")
    for thread in running:
        thread.join()
    log("scheduler: stopped")
    handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
