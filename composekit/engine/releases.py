"""Release history, kept on the engine: releases.json in the routes volume (beside Traefik's routes file, which
Traefik's file provider ignores: it reads .yml/.yaml/.toml only), so any machine deploying to this engine sees
the same history. Each release's image stays tagged <name>-app:<release> until it falls out of the last
``releases.keep``.

Each release also records the database's migration state after its migration (the Alembic revision by default),
so `composekit rollback` can tell when the database was migrated since the release it goes back to: migrations
are never reversed by a rollback."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from ..config.project import Project
from ..errors import DockerError, UserError
from ..render.compose import ROUTES_DIR, app_image
from .docker import Docker
from .switch import APP, WRITE_FILE, routes_container

__all__ = [
    "RELEASES_FILE",
    "Guard",
    "Release",
    "ReleaseRow",
    "list_releases",
    "read_releases",
    "record_release",
    "rollback_guard",
]

RELEASES_FILE = f"{ROUTES_DIR}/releases.json"

_READ = "import os, sys\npath = sys.argv[1]\nprint(open(path).read() if os.path.exists(path) else '[]')\n"


@dataclass(frozen=True)
class Release:
    id: str
    image: str  # the image id (sha256:...)
    created: str  # UTC, ISO 8601
    config_hash: str  # Compose's config hash of the app service
    # The database's migration state after this release's migration (migrate/state_command); None: unknown.
    # Entries written before it existed have none.
    migration: str | None = None


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
    project: Project,
    docker: Docker,
    release_id: str,
    config_hash: str,
    now: datetime | None = None,
    migration: str | None = None,
) -> list[str]:
    """Append the release now serving (with the migration state its migration left); untag the images of releases
    beyond ``releases.keep`` (never the serving one). Returns the tags removed."""
    image = docker.image_id(app_image(project.config))
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = [r for r in read_releases(docker) if r.id != release_id]
    history.append(Release(release_id, image, created, config_hash, migration))
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


# Rollback guard ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """Whether a rollback may go on; ``message``: the warning to print when it does, the reason when it does not."""

    proceed: bool
    message: str | None = None


def rollback_guard(
    target: Release, database: Release | None, *, migrates: bool, backward_compatible: bool, yes: bool
) -> Guard:
    """Decide a rollback to ``target`` from the migration states: ``database`` is the release whose migration ran
    last (the newest recorded: rollbacks migrate nothing), so its state is the database's.

    Same state: go. Different: refuse unless ``yes``, and always when migrations are not ``backward_compatible``.
    Unknown on either side: go, with a warning (nothing to compare), except when the stack has no migration at all.
    """
    if database is None or database.id == target.id:
        return Guard(True)
    if target.migration is None or database.migration is None:
        if not migrates and target.migration is None and database.migration is None:
            return Guard(True)
        return Guard(
            True,
            f"the migration state is unknown (release {target.id}: {target.migration or 'unknown'}, "
            f"release {database.id}, the last deployed: {database.migration or 'unknown'}), so composekit cannot tell "
            f"whether the database was migrated since release {target.id}; rolling back anyway",
        )
    if target.migration == database.migration:
        return Guard(True)
    states = (
        f"the database was migrated since release {target.id}: it is at migration state {database.migration} "
        f"(recorded by release {database.id}, the last deployed), release {target.id} was deployed at "
        f"{target.migration}"
    )
    if not backward_compatible:
        return Guard(
            False,
            f"{states}, and migrate/backward_compatible is false: release {target.id}'s code does not run on a "
            "database migrated since, so the rollback is refused, even with --yes. Deploy a release that migrates "
            "the database explicitly instead (`composekit up` of code whose migration goes forward, or back with "
            "a downgrade migration)",
        )
    if not yes:
        return Guard(
            False,
            f"{states}. A rollback does not reverse migrations: release {target.id}'s code would run on the database "
            f"at {database.migration}. Run `composekit rollback {target.id} --yes` if it works with that state "
            "(migrate/backward_compatible: true says it should)",
        )
    return Guard(
        True,
        f"the database stays at migration state {database.migration} (release {database.id}); release {target.id} "
        f"was deployed at {target.migration} (--yes)",
    )
