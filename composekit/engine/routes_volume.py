"""The routes volume, the one place composekit keeps state on the engine: Traefik's routes file, and beside it
releases.json and migration.json (Traefik's file provider reads .yml/.yaml/.toml only, so it ignores them). Every
read and write of it goes through here, as a script run in the routes container; a write is renamed into place, so
no reader (Traefik's watcher included) ever sees half a file."""

from __future__ import annotations

import uuid

from ..config.project import Project
from ..errors import DockerError
from ..render.routes_volume import ROUTES, ROUTES_DIR, ROUTES_FILE
from ..render.traefik import routes_file
from .docker import Docker

__all__ = [
    "MIGRATION_FILE",
    "RELEASES_FILE",
    "WRITE_FILE",
    "new_generation",
    "read_file",
    "routes_container",
    "write_file",
    "write_routes",
]

RELEASES_FILE = f"{ROUTES_DIR}/releases.json"
# The last migration composekit ran on this stack's database: release, state, when. Written once the migration
# exited 0 and before the switch, so it holds even when that release never goes live (it is then in no record).
MIGRATION_FILE = f"{ROUTES_DIR}/migration.json"

# Runs in the routes container: the new generation goes to a temporary file in the same directory, reaches
# the disk, and is renamed over the live file, so Traefik's watcher never sees half a file.
WRITE_FILE = (
    "import os, sys\n"
    "path, text = sys.argv[1], sys.argv[2]\n"
    "tmp = os.path.join(os.path.dirname(path), '.' + os.path.basename(path) + '.tmp')\n"
    "with open(tmp, 'w') as f:\n"
    "    f.write(text)\n"
    "    f.flush()\n"
    "    os.fsync(f.fileno())\n"
    "os.chmod(tmp, 0o644)\n"
    "os.rename(tmp, path)\n"
)


def _reader(missing: str) -> str:
    """A script for the routes container: print the file sys.argv[1], or ``missing`` (JSON) when it is absent."""
    return f"import os, sys\npath = sys.argv[1]\nprint(open(path).read() if os.path.exists(path) else '{missing}')\n"


def routes_container(docker: Docker) -> str:
    for c in docker.containers():
        if c.service == ROUTES and c.status == "running":
            return c.name
    raise DockerError(
        f"the {ROUTES} container is not running, so Traefik's routes cannot be written",
        ["docker", "compose", "ps", ROUTES],
        "",
        f"`composekit logs {ROUTES}` says why",
    )


def read_file(docker: Docker, path: str, missing: str) -> str:
    """The text of ``path`` in the routes volume, or ``missing`` (JSON: "[]", "null") when there is no such file."""
    return docker.exec(routes_container(docker), ["python3", "-I", "-c", _reader(missing), path])


def write_file(docker: Docker, path: str, text: str) -> None:
    """Replace ``path`` in the routes volume with ``text``, whole (WRITE_FILE)."""
    docker.exec(routes_container(docker), ["python3", "-I", "-c", WRITE_FILE, path, text])


def new_generation() -> str:
    """A fresh routes generation id: "g" and 11 hex digits. It never starts with a digit, so no YAML reader takes it
    for a number: Traefik (Go, YAML 1.2) read the all-digit id 018068102065 as the integer 18068102065 and echoed that,
    so the probe of that generation never matched and `up` ran out of its --timeout."""
    return "g" + uuid.uuid4().hex[:11]


def write_routes(
    project: Project, docker: Docker, live: list[str], probe: list[str], *, retry_after: int | None = None
) -> str:
    """Write a new generation of Traefik's routes; returns its id (probe it with probes.wait_generation).
    ``retry_after``: the maintenance routes (render/traefik.py routes_file), 503 with Retry-After."""
    generation = new_generation()
    text = routes_file(project.config, generation, live, probe, retry_after=retry_after)
    if project.config.edge == "shared":
        from .edge import connect_app, edge_docker, write_route  # edge imports this module: imported here, no cycle

        edge = edge_docker(docker.engine)
        # The app's `web` network exists once its first container runs (the switch starts it just before): the
        # edge joins it here, before routing to it.
        connect_app(project, edge)
        write_route(project, edge, text)  # the app's one file in the shared edge's directory
    else:
        write_file(docker, f"{ROUTES_DIR}/{ROUTES_FILE}", text)
    return generation
