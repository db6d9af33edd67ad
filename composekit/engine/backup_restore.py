"""`composekit restore BACKUP` in compose mode: the plan (what it will do, refused across migration states unless
--yes), then a verified safety backup of the data as it is, the app's domains answering 503 with Retry-After (the
maintenance routes), the app, its processes and its scheduler stopped, the database restored in one
transaction (pg_restore --clean into the stack's database: on a failure it is left as it was), the volumes' contents
replaced by their archives' (the volumes themselves are never deleted), the app and its companions started, waited
healthy and routed again.
Smoke runs after it (cli/backup.py), as after `up`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..config.companions import BACKUP_SERVICE, SCHEDULER_SERVICE
from ..config.project import Project
from ..errors import DockerError, HealthTimeoutError, UserError
from ..render.names import DB_SERVICE, FILES_DIR, app_image
from ..render.secrets import DB_SECRET
from . import probes, steps
from .backup import CAPS, BackupResult, backups_volume, check_files, create_backup, list_backups, worker_source
from .backup_manifest import BackupInfo, find_backup, restore_guard
from .docker import Docker
from .releases import list_releases, read_last_migration
from .routes_volume import write_routes
from .switch import APP
from .wait import Deadline, Progress

__all__ = ["RestorePlan", "RestoreResult", "plan_restore", "restore"]

_DIR = "/backups"
# What a client is told to wait while a restore runs (its Retry-After): a database of a few hundred MB restores in
# about a minute on a small server.
RETRY_AFTER = 60


def stopped_services(project: Project) -> list[str]:
    """What a restore stops: the app and whatever else of the app's image writes the data (processes, scheduler)
    or the backups (the scheduled backups' service, whose retention could delete the backup being restored);
    accessories, the database and the scheduled backups' database agent keep running."""
    config = project.config
    scheduled_backups = config.backups is not None and config.backups.schedule is not None
    return [
        APP,
        *sorted(config.processes),
        *([SCHEDULER_SERVICE] if config.schedules else []),
        *([BACKUP_SERVICE] if scheduled_backups else []),
    ]


def _route_to_app(project: Project, docker: Docker, deadline: Deadline) -> None:
    """The app's routes back on its running containers (a new generation, observed through Traefik)."""
    names = sorted(c.name for c in docker.containers() if c.service == APP and c.status == "running")
    generation = write_routes(project, docker, names, names)
    probes.wait_generation(project, generation, deadline, "routing to the restored app", engine=docker.engine)


@dataclass(frozen=True)
class RestorePlan:
    backup: BackupInfo
    steps: list[str]
    warning: str | None  # the migration states differ (--yes) or are unknown
    has_database: bool = False
    volumes: tuple[str, ...] | list[str] = ()


@dataclass(frozen=True)
class RestoreResult:
    backup: str
    safety: BackupResult


def restore_steps(project: Project, backup: BackupInfo, has_database: bool, volumes: list[str]) -> list[str]:
    """What a restore of ``backup`` does, in order, as the user reads it (--dry-run prints it)."""
    name = project.config.name
    out = [
        f"check backup {backup.id}'s files against its manifest (checksums, archives, SQLite integrity)",
        f"back up the data as it is now (a verified safety backup in volume {name}_backups; the restore stops if "
        "it fails)",
        f"stop the app ({name}'s app containers; the migration does not run)",
    ]
    if has_database and project.config.database is not None:
        out.append(
            f"restore the database {project.config.database.name} from backup {backup.id} (pg_restore --clean, one "
            "transaction: on a failure the database is left as it was)"
        )
    for volume in volumes:
        out.append(f"replace the contents of volume {name}_{volume} with backup {backup.id}'s (the volume is kept)")
    out.append("start the app, wait until it is healthy and routed, then smoke-test the deployment")
    return out


def plan_restore(project: Project, docker: Docker, wanted: str, *, yes: bool) -> RestorePlan:
    """Find the backup and decide whether it may be restored (UserError when not); nothing changes."""
    backups = list_backups(project.config, docker)
    try:
        backup = find_backup(backups, wanted)
    except ValueError as exc:
        raise UserError(f"{exc} (`composekit backups` lists them)") from None
    releases = list_releases(project, docker)
    last = read_last_migration(docker)
    serving = last.state if last is not None else (releases[-1].release.migration if releases else None)
    guard = restore_guard(backup, serving, [(r.release.id, r.release.migration) for r in releases], yes=yes)
    if not guard.proceed:
        raise UserError(guard.message or "refused")
    has_database, manifest_volumes = _manifest_keys(project, docker, backup.id)
    missing = sorted(set(manifest_volumes) - set(project.config.app.volumes))
    if missing:
        raise UserError(
            f"backup {backup.id} holds the volumes {', '.join(missing)}, which app/volumes no longer names; add them "
            "back to app/volumes to restore them (nothing was changed)"
        )
    if has_database and project.config.database is None:
        raise UserError(
            f"backup {backup.id} holds a database dump and the config sets no database:; restore it into a config "
            "with the same database: section (nothing was changed)"
        )
    steps_ = restore_steps(project, backup, has_database, manifest_volumes)
    return RestorePlan(backup, steps_, guard.message, has_database, manifest_volumes)


def _manifest_keys(project: Project, docker: Docker, backup_id: str) -> tuple[bool, list[str]]:
    out = docker.run_python(
        project.config.images.python,
        "import json, sys\nm = json.load(open(sys.argv[1]))\n"
        "print(json.dumps([m.get('database') is not None, sorted(m.get('volumes') or {})]))\n",
        [f"{_DIR}/{backup_id}/manifest.json"],
        {backups_volume(project): _DIR},
    )
    has_db, volumes = json.loads(out.strip().splitlines()[-1])
    return bool(has_db), [str(v) for v in volumes]


def restore(
    project: Project, docker: Docker, plan: RestorePlan, *, deadline: Deadline, report: Progress
) -> RestoreResult:
    """Carry out ``plan`` (the caller holds the deploy lock)."""
    config = project.config
    backup = plan.backup
    report(f"checking backup {backup.id}'s files against its manifest")
    problems = check_files(project, docker, backup.id)
    if problems:
        raise UserError(
            f"backup {backup.id} no longer matches its manifest ({'; '.join(problems[:3])}), so nothing was restored "
            f"and nothing was changed; `composekit backup --verify {backup.id}` records it as failed, choose another "
            "backup (`composekit backups`)"
        )
    report("backing up the data as it is now (safety copy)")
    # The backup being restored is kept whatever backups/keep says: the safety backup's retention could delete it.
    safety = create_backup(project, docker, report=report, kind="pre-restore", protect=(backup.id,))
    if not safety.info.verified:
        raise UserError(
            f"the safety backup {safety.info.id} failed its verification ({'; '.join(safety.info.problems[:3])}), so "
            "nothing was restored; the app is untouched"
        )
    report(f"safety backup {safety.info.id} verified ({safety.path}); `composekit restore {safety.info.id}` undoes")
    has_database, volumes = plan.has_database, list(plan.volumes)
    services = stopped_services(project)
    report(f"answering 503 with Retry-After: {RETRY_AFTER} on {', '.join(config.domains)} while the restore runs")
    try:
        generation = write_routes(project, docker, [], [], retry_after=RETRY_AFTER)
        probes.wait_generation(
            project, generation, deadline, "the maintenance routes", engine=docker.engine, status=503
        )
        report(f"stopping {', '.join(services)}")
        docker.stop_services(services)
        if has_database and config.database is not None:
            db = config.database
            report(f"restoring the database {db.name} from backup {backup.id}")
            script = (
                f'set -eu\nexport PGPASSWORD="$(cat {FILES_DIR}/{DB_SECRET})"\n'
                "pg_restore --clean --if-exists --single-transaction --exit-on-error --no-owner "
                f'-d "$PGDATABASE" {_DIR}/{backup.id}/database.dump\n'
            )
            docker.run_database_image(
                config.images.postgres,
                script,
                [(backups_volume(project), _DIR, "ro"), (f"{config.name}_files", FILES_DIR, "ro")],
                f"{config.name}_db",
                {"PGHOST": DB_SERVICE, "PGUSER": db.user, "PGDATABASE": db.name},
                f"pg_restore of backup {backup.id} failed; the database was left as it was (one transaction)",
                f"its message is above; the app is being started again; safety backup {safety.info.id} holds the data",
            )
        if volumes:
            report(f"restoring the volumes {', '.join(volumes)}")
            name = f"{config.name}-backup-restore"
            mounts = [(backups_volume(project), _DIR, "ro")]
            mounts += [(f"{config.name}_{v}", f"/volumes/{v}", "rw") for v in volumes]
            docker.start_helper(name, app_image(config), mounts, CAPS)
            try:
                pairs = [f"{v}=/volumes/{v}" for v in volumes]
                docker.helper_python(name, worker_source(), ["restore", f"{_DIR}/{backup.id}", *pairs])
            finally:
                docker.remove_helper(name)
    except (DockerError, UserError):
        report(f"starting {', '.join(services)} again after the failed restore")
        docker.start_services(services)
        _route_to_app(project, docker, deadline)
        raise
    report(f"starting {', '.join(services)}")
    docker.start_services(services)
    try:
        steps.wait_healthy(docker, services, deadline)
    except HealthTimeoutError as exc:
        raise HealthTimeoutError(
            f"{exc}\nthe restore of backup {backup.id} is done, but the app did not turn healthy on it, so its domains "
            "still answer 503 (the maintenance routes; the next `composekit up` routes them to the app again); safety "
            f"backup {safety.info.id} holds the data from before (`composekit restore {safety.info.id}`)"
        ) from None
    _route_to_app(project, docker, deadline)
    probes.wait_routed(project, deadline, docker.engine)
    return RestoreResult(backup.id, safety)
