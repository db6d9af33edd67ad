"""`composekit status` in compose mode: every container of the stack, and the app's gunicorn worker count."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..config.project import Project
from ..errors import DockerError
from . import steps
from .docker import Docker
from .target import Engine

__all__ = ["ServiceStatus", "StackStatus", "count_workers", "status"]

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
class StackStatus:
    name: str
    url: str
    services: list[ServiceStatus] = field(default_factory=list)
    engine: str = ""  # the Docker engine asked, and why that one (--host, host:, DOCKER_HOST, context)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    return StackStatus(project.config.name, f"https://{project.config.domain}/", rows, docker.engine.describe())
