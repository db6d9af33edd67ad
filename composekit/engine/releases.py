"""Release history, kept on the engine: releases.json in the routes volume (beside Traefik's routes file, which
Traefik's file provider ignores: it reads .yml/.yaml/.toml only), so any machine deploying to this engine sees
the same history. Each release's image stays tagged <name>-app:<release> until it falls out of the last
``releases.keep``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from ..config.project import Project
from ..errors import DockerError, UserError
from ..render.compose import ROUTES_DIR, app_image
from .docker import Docker
from .switch import APP, WRITE_FILE, routes_container

__all__ = ["RELEASES_FILE", "Release", "ReleaseRow", "list_releases", "read_releases", "record_release"]

RELEASES_FILE = f"{ROUTES_DIR}/releases.json"

_READ = "import os, sys\npath = sys.argv[1]\nprint(open(path).read() if os.path.exists(path) else '[]')\n"


@dataclass(frozen=True)
class Release:
    id: str
    image: str  # the image id (sha256:...)
    created: str  # UTC, ISO 8601
    config_hash: str  # Compose's config hash of the app service


@dataclass(frozen=True)
class ReleaseRow:
    release: Release
    tag: str
    current: bool


def read_releases(docker: Docker) -> list[Release]:
    text = docker.exec(routes_container(docker), ["python3", "-I", "-c", _READ, RELEASES_FILE])
    try:
        return [Release(**item) for item in json.loads(text)]
    except (ValueError, TypeError) as exc:
        raise UserError(f"{RELEASES_FILE} in the routes volume is not a release list ({exc})") from None


def record_release(
    project: Project, docker: Docker, release_id: str, config_hash: str, now: datetime | None = None
) -> list[str]:
    """Append the release now serving; untag the images of releases beyond ``releases.keep`` (never the serving
    one). Returns the tags removed."""
    image = docker.image_id(app_image(project.config))
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = [r for r in read_releases(docker) if r.id != release_id]
    history.append(Release(release_id, image, created, config_hash))
    keep = project.config.releases.keep
    dropped, history = history[:-keep], history[-keep:]
    text = json.dumps([asdict(r) for r in history], indent=1) + "\n"
    docker.exec(routes_container(docker), ["python3", "-I", "-c", WRITE_FILE, RELEASES_FILE, text])
    removed = []
    for r in dropped:
        if r.image == image or any(k.image == r.image for k in history):
            continue
        tag = f"{project.config.name}-app:{r.id}"
        try:
            docker.untag(tag)
            removed.append(tag)
        except DockerError:
            pass  # already gone, or still used by a container: kept, tried again next time
    return removed


def list_releases(project: Project, docker: Docker) -> list[ReleaseRow]:
    """Oldest first; ``current`` is the release whose image the running app container runs."""
    running = {c.image for c in docker.containers() if c.service == APP and c.status == "running"}
    return [ReleaseRow(r, f"{project.config.name}-app:{r.id}", r.image in running) for r in read_releases(docker)]
