"""`composekit status` in compose mode: every container of the stack, and the app's gunicorn worker count."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config.companions import SCHEDULER_SERVICE
from ..config.model import Config
from ..config.project import Project
from ..errors import DockerError
from ..render.companions import SCHEDULER_STATE_DIR
from . import steps
from .docker import Docker
from .target import Engine

__all__ = ["ScheduleStatus", "ServiceStatus", "StackStatus", "count_workers", "schedule_rows", "status"]

# Counts the gunicorn workers: the children of PID 1 (the gunicorn master) that are not zombies.
_COUNT_WORKERS = (
    "import os\n"
    "n = 0\n"
    "for p in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        s = dict(l.split(':\\t', 1) for l in open(f'/proc/{p}/status').read().splitlines() if ':\\t' in l)\n"
    "    except OSError:\n"
    "        continue\n"
    "    n += s.get('PPid') == '1' and not s.get('State', '').startswith('Z')\n"
    "print(n)\n"
)


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    container: str
    status: str
    health: str | None
    exit_code: int | None
    started_at: str | None
    workers: int | None = None
    note: str | None = None  # why a figure is missing (the worker count could not be read)


@dataclass(frozen=True)
class ScheduleStatus:
    """A schedule's last run and next time, as the scheduler recorded them (runtime/scheduler.py state.json)."""

    name: str
    cron: str
    scheduled: str | None = None  # the scheduled time of the last run
    started: str | None = None
    ended: str | None = None  # None while it runs
    exit_code: int | None = None
    timed_out: bool = False
    interrupted: bool = False  # the scheduler stopped before the run ended
    output: list[str] = field(default_factory=list)  # its last lines
    next: str | None = None
    note: str | None = None  # why nothing is known

    @property
    def result(self) -> str:
        if self.scheduled is None:
            return "-"
        if self.ended is None:
            return "running"
        if self.interrupted:
            return "interrupted"
        return f"exit {self.exit_code}" + (" (timed out)" if self.timed_out else "")


@dataclass(frozen=True)
class StackStatus:
    name: str
    url: str
    services: list[ServiceStatus] = field(default_factory=list)
    engine: str = ""  # the Docker engine asked, and why that one (--host, host:, DOCKER_HOST, context)
    schedules: list[ScheduleStatus] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_READ_STATE = f"import sys; sys.stdout.write(open('{SCHEDULER_STATE_DIR}/state.json').read())"


def schedule_rows(config: Config, state: str | None, note: str | None = None) -> list[ScheduleStatus]:
    """One row per schedule of the config from the scheduler's state.json (None: not readable, ``note`` says why)."""
    jobs = json.loads(state).get("jobs", {}) if state is not None else {}
    rows = []
    for name, schedule in sorted(config.schedules.items()):
        job = jobs.get(name, {})
        run = job.get("last_run") or {}
        rows.append(
            ScheduleStatus(
                name=name,
                cron=schedule.cron,
                scheduled=run.get("scheduled"),
                started=run.get("started"),
                ended=run.get("ended"),
                exit_code=run.get("exit_code"),
                timed_out=bool(run.get("timed_out")),
                interrupted=bool(run.get("interrupted")),
                output=list(run.get("output") or []),
                next=job.get("next"),
                note=note if state is None else None if job else "not started by the running scheduler yet",
            )
        )
    return rows


def _schedules(config: Config, docker: Docker, rows: list[ServiceStatus]) -> list[ScheduleStatus]:
    if not config.schedules:
        return []
    running = [r for r in rows if r.service == SCHEDULER_SERVICE and r.status == "running"]
    if not running:
        return schedule_rows(config, None, "the scheduler is not running (`composekit up` starts it)")
    try:
        return schedule_rows(config, docker.exec(running[0].container, ["python3", "-c", _READ_STATE]))
    except (DockerError, ValueError) as exc:  # no state yet (it waits for the lock), or it stopped meanwhile
        said = exc.stderr.splitlines()[-1] if isinstance(exc, DockerError) and exc.stderr else str(exc)
        return schedule_rows(config, None, f"reading the scheduler's state failed ({said})")


def count_workers(docker: Docker, container: str) -> int:
    return int(docker.exec(container, ["python3", "-c", _COUNT_WORKERS]).strip())


def status(project: Project, docker: Docker | None = None, engine: Engine | None = None) -> StackStatus:
    """Every container of the stack; a worker count that cannot be read is left unknown with a note."""
    docker = docker or steps.docker_for(project, engine)
    rows = []
    for c in docker.containers():
        workers: int | None = None
        note: str | None = None
        if c.service == "app" and c.status == "running":
            try:
                workers = count_workers(docker, c.name)
            except (DockerError, ValueError) as exc:  # the container stopped meanwhile, or answered oddly
                said = exc.stderr.splitlines()[-1] if isinstance(exc, DockerError) and exc.stderr else str(exc)
                note = f"workers unknown: counting them in {c.name} failed" + (f" ({said})" if said else "")
        rows.append(ServiceStatus(c.service, c.name, c.status, c.health, c.exit_code, c.started_at, workers, note))
    url = f"https://{project.config.domain}/"
    schedules = _schedules(project.config, docker, rows)
    return StackStatus(project.config.name, url, rows, docker.engine.describe(), schedules)
