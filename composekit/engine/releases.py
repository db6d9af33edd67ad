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
from ..render.names import app_image
from .docker import Docker
from .routes_volume import MIGRATION_FILE, RELEASES_FILE, read_file, write_file
from .switch import APP

__all__ = [
    "Guard",
    "LastMigration",
    "Release",
    "ReleaseRow",
    "distinct_release_id",
    "list_releases",
    "read_last_migration",
    "read_releases",
    "record_migration",
    "record_release",
    "require_compose_mode",
    "rollback_guard",
]


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
    text = read_file(docker, RELEASES_FILE, "[]")
    try:
        return [Release(**item) for item in json.loads(text)]
    except (ValueError, TypeError) as exc:
        raise UserError(f"{RELEASES_FILE} in the routes volume is not a release list ({exc})") from None


def distinct_release_id(release: str, image: str, recorded: list[Release]) -> str:
    """``release``, or, when the history holds that id for another image (a clean commit rebuilt on a newer base
    image, a config change outside the app's directory), that id with a short hash of ``image``: two images never
    share an id, so the earlier release stays in the history and its tag keeps pointing at its image."""
    if all(r.id != release or r.image == image for r in recorded):
        return release
    return f"{release}-{image.removeprefix('sha256:')[:8]}"


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
    write_file(docker, RELEASES_FILE, text)
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


@dataclass(frozen=True)
class LastMigration:
    release: str  # the release whose migration it was (it may never have gone live)
    state: str | None  # the database's migration state it left; None: unknown
    at: str  # UTC, ISO 8601


def record_migration(docker: Docker, release_id: str, state: str | None, now: datetime | None = None) -> None:
    """Record the migration that just ran (release ``release_id``'s), before its release goes live or fails to."""
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = json.dumps(asdict(LastMigration(release_id, state, at)), indent=1) + "\n"
    write_file(docker, MIGRATION_FILE, text)


def read_last_migration(docker: Docker) -> LastMigration | None:
    """The last migration composekit ran on this stack's database; None before the first one recorded."""
    text = read_file(docker, MIGRATION_FILE, "null")
    try:
        found = json.loads(text)
        return None if found is None else LastMigration(**found)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{MIGRATION_FILE} in the routes volume is not a migration record ({exc})") from None


def require_compose_mode(project: Project, command: str) -> None:
    """Refuse `releases` and `rollback` in mode: swarm, before anything is asked of the engine or created on it
    (the deploy lock): there the release history lives nowhere composekit reads (no routes volume), and Swarm
    keeps its own previous spec of each service."""
    if project.config.mode != "swarm":
        return
    app = f"{project.config.name}_{APP}"
    if command == "releases":
        raise UserError(
            "composekit releases applies to mode: compose only: in mode: swarm no release history is recorded; the "
            f"serving release is the tag of the app service's image: `docker service inspect {app} --format "
            "'{{.Spec.TaskTemplate.ContainerSpec.Image}}'` on the manager"
        )
    raise UserError(
        f"composekit {command} applies to mode: compose only (nothing was changed): in mode: swarm, check out the "
        f"earlier release's commit and run `composekit up` (it deploys that code; the migration is not reversed), "
        f"or undo the app service's last update with `docker service rollback {app}` on the manager"
    )


def list_releases(project: Project, docker: Docker) -> list[ReleaseRow]:
    """Oldest first; ``current`` is the release whose image the running app container runs."""
    require_compose_mode(project, "releases")
    running = {c.image for c in docker.containers() if c.service == APP and c.status == "running"}
    return [ReleaseRow(r, f"{project.config.name}-app:{r.id}", r.image in running) for r in read_releases(docker)]


# Rollback guard ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """Whether a rollback may go on; ``message``: the warning to print when it does, the reason when it does not."""

    proceed: bool
    message: str | None = None


def rollback_guard(
    target: Release,
    database: Release | None,
    *,
    migrates: bool,
    backward_compatible: bool,
    yes: bool,
    last: LastMigration | None = None,
) -> Guard:
    """Decide a rollback to ``target`` from the migration states. The database's state is the one ``last``, the
    last migration composekit ran, left; without that record, the one ``database`` recorded, the newest release
    (rollbacks migrate nothing). Only ``last`` knows a deploy whose migration ran but that never went live.

    Same state: go. Different: refuse unless ``yes``, and always when migrations are not ``backward_compatible``.
    Unknown on either side: go, with a warning (nothing to compare), except when the stack has no migration at all.
    """
    if last is not None:
        state: str | None = last.state
        source = f"left by the last migration, release {last.release}'s"
        known_as = f"the last migration (release {last.release}'s)"
    elif database is None or database.id == target.id:
        return Guard(True)
    else:
        state = database.migration
        source = f"recorded by release {database.id}, the last deployed"
        known_as = f"release {database.id}, the last deployed"
    if target.migration is None or state is None:
        if not migrates and target.migration is None and state is None:
            return Guard(True)
        return Guard(
            True,
            f"the migration state is unknown (release {target.id}: {target.migration or 'unknown'}, "
            f"{known_as}: {state or 'unknown'}), so composekit cannot tell whether the database was migrated since "
            f"release {target.id}; rolling back anyway",
        )
    if target.migration == state:
        return Guard(True)
    states = (
        f"the database was migrated since release {target.id}: it is at migration state {state} ({source}), "
        f"release {target.id} was deployed at {target.migration}"
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
            f"at {state}. Run `composekit rollback {target.id} --yes` if it works with that state "
            "(migrate/backward_compatible: true says it should)",
        )
    return Guard(
        True,
        f"the database stays at migration state {state} ({source}); release {target.id} was deployed at "
        f"{target.migration} (--yes)",
    )
