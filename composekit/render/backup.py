"""Scheduled backups (backups/schedule) in the compose file: the stack backs itself up, with no Docker socket in any
container and nothing run from the deploying machine. Pure, like render/compose.py.

Two services, only when backups/schedule is set, split as `composekit backup` splits its work between containers
(engine/backup.py):

- `backup`: the app's image, running runtime/scheduler.py with one job, runtime/backup_job.py (catch-up once, flock,
  its state in the backups volume). Root with the manual helper's capabilities only (read and archive any file of the
  app's volumes with its owner), no network at all, a read-only root; the app's volumes at /volumes/<name> as the
  manual helper has them, the backups volume, the routes volume read-only (the release and migration records). No
  environment, no secret.
- `backup-db` (with database:): the database image, running render/backup_sql.py's agent_script: pg_dump and the
  verification's restore into a temporary cluster (initdb + pg_ctl as the postgres user, a Unix socket only), on
  the internal `db` network. The password comes from the files volume into the dump's process only, as for
  `composekit backup`.

The backups volume is the manual path's (<project>_backups, created by `up` unlabelled: `down --delete-volumes`
keeps it), declared external. Their files reach the containers through the files volume: scheduler.py and cronsim.py
(as for schedules/), backup_job.py, backup_worker.py, backup_manifest.py (engine/backup_manifest.py, standard
library only: the manual path's own decisions) and backup_agent.sh."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import metadata, resources
from typing import Any

from ..config.companions import BACKUP_DB_SERVICE, BACKUP_SERVICE
from ..config.project import Project
from .backup_sql import BACKUP_DIR, agent_script
from .compose import FILES_SERVICE
from .migration_state import state_command
from .names import DB_SERVICE, FILES_DIR, app_image
from .routes_volume import ROUTES
from .services import logging_options

__all__ = [
    "BACKUPS_KEY",
    "BACKUP_FILES",
    "HELPER_CAPS",
    "VOLUMES_DIR",
    "add_backup_services",
    "backup_files",
    "job_settings",
]

# The capabilities of every helper that reads or restores the app's volumes: any file, with its owner.
HELPER_CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"]
# backup-db: the dump and its directory as root, the temporary cluster as the postgres user.
_AGENT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
# Where the helpers mount the app's volumes (/volumes/<name>).
VOLUMES_DIR = "/volumes"
BACKUPS_KEY = "backups"
BACKUP_FILES = ("backup_job.py", "backup_worker.py", "backup_manifest.py", "backup_agent.sh")
_SCHEDULER_FILES = ("scheduler.py", "cronsim.py")
_STATE_DIR = f"{BACKUP_DIR}/.schedule"
_STOP_MARGIN = 20
_TMPFS = "/tmp:size=64m"


def backup_files() -> dict[str, str]:
    """The files of a scheduled backup, by name (the scheduler's come from render/companions.py scheduler_files)."""
    runtime = resources.files("composekit.runtime")
    engine = resources.files("composekit.engine")
    return {
        "backup_job.py": runtime.joinpath("backup_job.py").read_text(encoding="utf-8"),
        "backup_worker.py": runtime.joinpath("backup_worker.py").read_text(encoding="utf-8"),
        "backup_manifest.py": engine.joinpath("backup_manifest.py").read_text(encoding="utf-8"),
        "backup_agent.sh": agent_script(),
    }


def _digest(contents: Mapping[str, str], names: tuple[str, ...]) -> str:
    return hashlib.sha256("".join(contents[n] for n in names).encode()).hexdigest()[:16]


def _files_mount() -> dict[str, Any]:
    return {"type": "volume", "source": "files", "target": FILES_DIR, "read_only": True, "volume": {"nocopy": True}}


def _version() -> str:
    try:
        return metadata.version("composekit")
    except metadata.PackageNotFoundError:
        return "unknown"


def job_settings(project: Project) -> dict[str, Any]:
    """What runtime/backup_job.py is told: never a secret. The restored Alembic state is compared with the recorded
    migration state only when that state is `alembic current`'s (as engine/backup.py does)."""
    config = project.config
    command = state_command(config.migrate)
    assert config.backups is not None
    db = config.database
    return {
        "project": config.name,
        "version": _version(),
        "timeout": config.backups.timeout,
        "keep": config.backups.keep_rule(),
        "database": None if db is None else {"name": db.name, "image": config.images.postgres},
        "volumes": {v: f"{VOLUMES_DIR}/{v}" for v in sorted(config.app.volumes)},
        "alembic_state": command is not None and command.alembic,
    }


def _backup_service(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    config = project.config
    settings = job_settings(project)
    assert config.backups is not None and config.backups.schedule is not None
    argv = ["python3", f"{FILES_DIR}/backup_job.py", json.dumps(settings, sort_keys=True)]
    jobs = {"backup": {"cron": config.backups.schedule, "argv": argv, "timeout": config.backups.timeout}}
    depends: dict[str, Any] = {FILES_SERVICE: {"condition": "service_completed_successfully"}}
    if config.database is not None:
        depends[BACKUP_DB_SERVICE] = {"condition": "service_started"}
    return {
        "image": app_image(config),
        "pull_policy": "never",
        # The scheduler's state (its lock, state.json) in the backups volume: kept across releases for its catch-up.
        "entrypoint": ["sh", "-c", f'mkdir -p {_STATE_DIR} && exec python3 "$@"', "scheduler"],
        "command": [f"{FILES_DIR}/scheduler.py", _STATE_DIR, json.dumps(jobs, sort_keys=True)],
        "restart": "always",
        "user": "0:0",
        "volumes": [
            _files_mount(),
            f"{BACKUPS_KEY}:{BACKUP_DIR}",
            f"{ROUTES}:/routes:ro",
            *(f"{v}:{VOLUMES_DIR}/{v}" for v in sorted(config.app.volumes)),
        ],
        # A new job or scheduler file recreates it.
        "labels": {"composekit.backup-files": _digest(contents, (*_SCHEDULER_FILES, *BACKUP_FILES))},
        "depends_on": depends,
        "stop_grace_period": f"{config.backups.timeout + _STOP_MARGIN}s",
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "cap_add": HELPER_CAPS,
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": [_TMPFS],
        "logging": logging_options(config),
    }


def _backup_db_service(project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    config = project.config
    db = config.database
    assert db is not None
    return {
        "image": config.images.postgres,
        "entrypoint": ["bash", f"{FILES_DIR}/backup_agent.sh"],
        "restart": "always",
        "user": "0:0",
        "environment": {"PGHOST": DB_SERVICE, "PGUSER": db.user, "PGDATABASE": db.name},
        "volumes": [_files_mount(), f"{BACKUPS_KEY}:{BACKUP_DIR}"],
        "labels": {"composekit.backup-files": _digest(contents, ("backup_agent.sh",))},
        "depends_on": {FILES_SERVICE: {"condition": "service_completed_successfully"}},
        "stop_grace_period": "60s",
        "networks": [DB_SERVICE],
        "cap_drop": ["ALL"],
        "cap_add": _AGENT_CAPS,
        "security_opt": ["no-new-privileges:true"],
        "logging": logging_options(config),
    }


def add_backup_services(doc: dict[str, Any], project: Project, contents: Mapping[str, str]) -> dict[str, Any]:
    """Put backup (and backup-db) into the compose document when backups/schedule is set; else leave it."""
    config = project.config
    if config.backups is None or config.backups.schedule is None:
        return doc
    doc["services"][BACKUP_SERVICE] = _backup_service(project, contents)
    if config.database is not None:
        doc["services"][BACKUP_DB_SERVICE] = _backup_db_service(project, contents)
    doc["volumes"][BACKUPS_KEY] = {"name": f"{config.name}_{BACKUPS_KEY}", "external": True}
    files = doc["services"][FILES_SERVICE]
    for name in (*_SCHEDULER_FILES, *BACKUP_FILES):
        if name in doc["configs"]:  # schedules/ ships the scheduler too
            continue
        doc["configs"][name] = {"content": contents[name]}
        files["configs"].append({"source": name, "target": f"{FILES_DIR}/{name}"})
        files["command"].append(f"{FILES_DIR}/{name}")
    return doc
