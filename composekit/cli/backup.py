"""The backup commands: backup (make one, verified; --verify ID again; --download), backups (list), restore."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ..config.project import Project
from ..engine.backup import create_backup, download_backup, list_backups, require_compose_mode, verify_backup
from ..engine.backup_restore import plan_restore
from ..engine.backup_restore import restore as restore_backup
from ..engine.backup_s3 import BucketFetch, fetch_from_bucket, list_bucket, upload_backup
from ..engine.lock import deploy_lock
from ..engine.steps import compose_secrets, docker_for
from ..engine.wait import Deadline
from ..errors import UserError
from ..verify.smoke import SmokeOptions, smoke
from .app import app, current_project, engine_for, err, out, progress, run
from .display import render_table, smoke_retrying

__all__ = ["backup", "backups", "restore"]

BreakLock = Annotated[
    bool, typer.Option("--break-lock", help="Remove a deploy lock a deploy that died left on the engine.")
]


def _has_s3(project: Project) -> bool:
    return project.config.backups is not None and project.config.backups.s3 is not None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@app.command()
def backup(
    download: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Also copy the verified backup to DIR/<id> on this machine."),
    ] = None,
    verify: Annotated[
        str | None,
        typer.Option(metavar="ID", help="Verify the existing backup ID again instead of making one."),
    ] = None,
    break_lock: BreakLock = False,
) -> None:
    """Back up the database (pg_dump) and the app's volumes on the server, then verify the backup by restoring it
    into throwaway containers; only a verified backup counts (and is uploaded to backups/s3). Prints its id."""

    def do() -> None:
        project = current_project()
        require_compose_mode(project, "backup")
        with engine_for(project) as engine:
            docker = docker_for(project, engine)
            with deploy_lock(project, docker, "backup", break_lock=break_lock, report=progress):
                upload_error = None
                if verify is not None:
                    result = verify_backup(project, docker, verify, report=progress)
                else:
                    result = create_backup(project, docker, report=progress)
                    if result.info.verified and _has_s3(project):
                        upload_error = upload_backup(project, docker, result.info.id, report=progress)
            info = result.info
            if not info.verified:
                raise UserError(
                    f"backup {info.id} failed its verification: {'; '.join(info.problems)}. It is kept for "
                    f"inspection ({result.path}), marked failed, and never counts as the latest backup; fix the "
                    "cause and run `composekit backup` again"
                )
            progress(f"backup {info.id} verified ({_size(info.size)}, {result.path})")
            if download is not None:
                where = download_backup(project, docker, info.id, download)
                progress(f"downloaded to {where}")
            if upload_error is not None:
                raise UserError(
                    f"backup {info.id} is verified and kept on the server ({result.path}), but {upload_error}; then "
                    "`composekit backup` again"
                )
        out.print(info.id)

    run(do)


@app.command()
def backups(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """The backups on the server (and in backups/s3's bucket), oldest first: id, time, size, verified or failed,
    release, migration state, where (server, s3)."""

    def do() -> None:
        project = current_project()
        require_compose_mode(project, "backups")
        with engine_for(project) as engine:
            docker = docker_for(project, engine)
            local = list_backups(project.config, docker)
            remote = list_bucket(project, docker) if _has_s3(project) else []
        where: dict[str, list[str]] = {}
        for place, listed in (("server", local), ("s3", remote)):
            for b in listed:
                where.setdefault(b.id, []).append(place)
        by_id = {b.id: b for b in remote} | {b.id: b for b in local}
        found = [by_id[i] for i in sorted(by_id)]
        if as_json:
            rows = [{**asdict(b), "where": where[b.id]} for b in found]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        if not found:
            progress("no backup on the server yet (`composekit backup` makes one)")
        for b in found:
            out.print(
                f"{b.id:<20} {b.finished or '-':<20} {_size(b.size):>10}  {b.status:<9} {b.kind:<11} "
                f"{b.release or '-'}  {b.migration or '-'}  {'+'.join(where[b.id])}",
                markup=False,
            )
            for problem in b.problems:
                out.print(f"    {problem}", markup=False)

    run(do)


@app.command()
def restore(
    backup_id: Annotated[str, typer.Argument(metavar="BACKUP", help='A backup id, or "latest" (verified).')],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what the restore would do, and stop.")] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Restore even though the backup's migration state differs from the serving one's."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds the app may take to turn healthy again.")] = 300,
    smoke_wait: Annotated[float, typer.Option(min=0, help="Seconds smoke retries after the restore.")] = 60,
    break_lock: BreakLock = False,
) -> None:
    """Restore a verified backup (one only backups/s3's bucket holds is downloaded and checked first): safety backup
    first, app stopped, database and volumes restored, app started, smoke-tested. Volumes are never deleted."""

    def do() -> bool:
        project = current_project()
        require_compose_mode(project, "restore")
        with engine_for(project, probes=True) as engine:
            docker = docker_for(project, engine)
            docker.compose_environment.update(compose_secrets(project))
            with deploy_lock(project, docker, "restore", break_lock=break_lock, report=progress):
                fetched = BucketFetch(backup_id)
                if _has_s3(project):
                    fetched = fetch_from_bucket(project, docker, backup_id, dry_run=dry_run, report=progress)
                if fetched.steps:  # --dry-run of a backup only the bucket holds
                    progress(f"restore of backup {fetched.backup_id} from the bucket; it would:")
                    for i, step in enumerate(fetched.steps, 1):
                        progress(f"  {i}. {step}")
                    progress("--dry-run: nothing was changed")
                    return True
                plan = plan_restore(project, docker, fetched.backup_id, yes=yes)
                if plan.warning:
                    progress(f"warning: {plan.warning}")
                verb = "would" if dry_run else "will"
                progress(f"restore of backup {plan.backup.id} ({plan.backup.finished}); it {verb}:")
                for i, step in enumerate(plan.steps, 1):
                    progress(f"  {i}. {step}")
                if dry_run:
                    progress("--dry-run: nothing was changed")
                    return True
                result = restore_backup(project, docker, plan, deadline=Deadline(timeout), report=progress)
        progress(f"backup {result.backup} restored; safety backup {result.safety.info.id} holds the data from before")
        report = smoke(SmokeOptions.from_config(project.config, project.root), wait=smoke_wait, on_retry=smoke_retrying)
        render_table(report, err)
        return report.passed

    if not run(do):
        raise typer.Exit(1)
