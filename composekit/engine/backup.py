"""`composekit backup` in compose mode: a consistent dump of the PostgreSQL database and archives of the app's named
volumes into the backups volume (<project>_backups, one directory per backup id), a manifest, and the verification
that makes a backup count; `backups` lists them.

Where things run, all on the engine's machine, nothing through a published port: pg_dump in a throwaway container
of the database image on the stack's internal `db` network (the password read from the `files` volume into that
process's environment only), in the same REPEATABLE READ snapshot as the row count of every table; the volumes
in a helper container of the app's image (runtime/backup_worker.py: SQLite through its backup API). The
verification restores the dump into a throwaway PostgreSQL of the same image with no network at all, compares the
row counts and the Alembic state, and checks every archive and file against the manifest after extraction.

Not backed up: composekit's own volumes (routes, files: rendered by every `up`) and the ACME storage (acme.json
holds the ACME account key and certificates: a private key has no place in a backup that `--download` copies
around, and Traefik obtains new certificates by itself; see docs/backups.md)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from ..config.model import Config
from ..config.project import Project
from ..errors import DockerError, UserError
from ..render.names import DB_SERVICE, FILES_DIR, app_image
from .backup_manifest import (
    BACKUPS_VOLUME,
    BackupInfo,
    build_manifest,
    new_backup_id,
    parse_manifest,
    retention,
    set_verification,
)
from .backup_sql import BACKUP_DIR, compare_counts, count_script, dump_script, parse_counts
from .docker import Docker
from .migration_state import state_command
from .releases import list_releases, read_last_migration
from .wait import Deadline, Poll, Progress

__all__ = [
    "BackupResult",
    "backups_volume",
    "check_files",
    "create_backup",
    "download_backup",
    "list_backups",
    "require_compose_mode",
    "verify_backup",
]

CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"]  # read and restore any file, with its owner
_DIR = BACKUP_DIR
_VOLUMES = "/volumes"


def worker_source() -> str:
    return resources.files("composekit.runtime").joinpath("backup_worker.py").read_text(encoding="utf-8")


def backups_volume(project: Project) -> str:
    return f"{project.config.name}_{BACKUPS_VOLUME}"


def require_compose_mode(project: Project, command: str) -> None:
    """Refuse backups in mode: swarm before anything is asked of the engine."""
    if project.config.mode == "swarm":
        raise UserError(
            f"composekit {command} applies to mode: compose only (nothing was changed): in mode: swarm the database "
            "and the volumes live on the nodes Swarm chose; back them up there (pg_dump in the db service's task)"
        )


@dataclass(frozen=True)
class BackupResult:
    info: BackupInfo
    manifest: dict[str, Any]
    path: str  # where it is on the server: the volume and the directory


class _Helper:
    """The helper container of one backup operation: the app's image, the backups volume and the app's volumes."""

    def __init__(self, project: Project, docker: Docker, name: str, with_volumes: bool) -> None:
        config = project.config
        self.docker, self.name = docker, name
        # The app's volumes read-write, as the app has them: SQLite may need to create a -shm file to read a WAL
        # database (runtime/backup_worker.py gives it to the database's owner).
        mounts = [(backups_volume(project), _DIR, "rw")]
        if with_volumes:
            mounts += [(f"{config.name}_{v}", f"{_VOLUMES}/{v}", "rw") for v in sorted(config.app.volumes)]
        docker.start_helper(name, app_image(config), mounts, CAPS)
        self.source = worker_source()

    def run(self, *args: str) -> Any:
        return json.loads(self.docker.helper_python(self.name, self.source, list(args)).strip().splitlines()[-1])

    def write_manifest(self, backup_id: str, manifest: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="composekit-backup-") as tmp:
            local = Path(tmp) / "manifest.json"
            local.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
            partial = f"{_DIR}/{backup_id}/.manifest.json.partial"
            self.docker.copy_in(self.name, local, partial)
        self.run("rename", partial, f"{_DIR}/{backup_id}/manifest.json")

    def close(self) -> None:
        self.docker.remove_helper(self.name)


def list_backups(config: Config, docker: Docker) -> list[BackupInfo]:
    """Every backup in the backups volume, oldest first ([] when there is no such volume yet). Needs the config
    only (smoke runs where the app's files may be absent), and a Docker with or without the stack's files."""
    volume = f"{config.name}_{BACKUPS_VOLUME}"
    if not docker.volume_exists(volume):
        return []
    code = worker_source()
    out = docker.run_python(config.images.python, code, ["list", _DIR], {volume: _DIR})
    return [parse_manifest(m) for m in json.loads(out.strip().splitlines()[-1])]


def _dump_database(project: Project, docker: Docker, backup_id: str, report: Progress) -> None:
    config = project.config
    db = config.database
    assert db is not None
    running = [c for c in docker.containers() if c.service == DB_SERVICE and c.status == "running"]
    if not running:
        raise UserError(
            f"the database of {config.name} is not running, so it cannot be dumped: `composekit up` starts it "
            "(`composekit status` shows its state)"
        )
    report(f"dumping the database {db.name} (pg_dump, custom format) in one snapshot with its row counts")
    docker.run_database_image(
        config.images.postgres,
        dump_script(backup_id),
        [(backups_volume(project), _DIR, "rw"), (f"{config.name}_files", FILES_DIR, "ro")],
        f"{config.name}_db",
        {"PGHOST": DB_SERVICE, "PGUSER": db.user, "PGDATABASE": db.name},
        "pg_dump of the database failed",
        "its message is above; `composekit logs db` shows the database's side",
    )


def composekit_version() -> str:
    try:
        return metadata.version("composekit")
    except metadata.PackageNotFoundError:
        return "unknown"


def create_backup(
    project: Project,
    docker: Docker,
    *,
    version: str | None = None,
    report: Progress = lambda _: None,
    kind: str = "manual",
    now: datetime | None = None,
) -> BackupResult:
    """Back up the database and the app's volumes, write the manifest, verify; the result says verified or
    failed (a failed backup stays for inspection, marked failed). The caller holds the deploy lock."""
    config = project.config
    if config.database is None and not config.app.volumes:
        raise UserError(
            f"nothing to back up: {' + '.join(p.name for p in project.config_files)} sets no database: and no "
            "app/volumes (composekit's own volumes, "
            "routes and files, are rendered by every `up`; acme.json is not backed up, see docs/backups.md)"
        )
    if not docker.image_exists(app_image(config)):
        raise UserError(f"the app image {app_image(config)} is not on the engine: deploy first (`composekit up`)")
    started = now or datetime.now(UTC)
    existing = [b.id for b in list_backups(project.config, docker)]
    backup_id = new_backup_id(started, existing)
    docker.create_labelled_volume(backups_volume(project), {"composekit.backups": config.name})
    serving = next((r.release.id for r in list_releases(project, docker) if r.current), None)
    last = read_last_migration(docker)
    helper = _Helper(project, docker, f"{config.name}-backup-{backup_id.lower()}", with_volumes=True)
    try:
        docker.helper_exec(helper.name, ["mkdir", "-p", f"{_DIR}/{backup_id}"])
        report(f"backup {backup_id}: into volume {backups_volume(project)}")
        try:
            database, volumes = _write_files(project, docker, helper, backup_id, report)
        except UserError:
            # Files without a manifest count for nothing and only take space: a partial backup is removed.
            docker.helper_exec(helper.name, ["rm", "-rf", f"{_DIR}/{backup_id}"])
            report(f"removed the partial backup {backup_id}")
            raise
        manifest = build_manifest(
            backup_id=backup_id,
            project=config.name,
            version=version or composekit_version(),
            started=started,
            finished=datetime.now(UTC),
            release=serving,
            migration=asdict(last) if last is not None else None,
            database=database,
            volumes=volumes,
            kind=kind,
        )
        helper.write_manifest(backup_id, manifest)
        manifest = _verify(project, docker, helper, manifest, report)
        # Not after a restore's safety backup: it would delete the backup being restored when that one is older
        # than the keep-th newest verified backup.
        keep = config.backups.keep if config.backups is not None and kind != "pre-restore" else None
        if manifest["status"] == "verified" and keep is not None:
            old = retention(list_backups(config, docker), keep)
            if old:
                removed = helper.run("remove", _DIR, *old)
                report(f"deleted {len(removed)} older backups (backups/keep is {keep}): " + ", ".join(removed))
    finally:
        helper.close()
    return BackupResult(parse_manifest(manifest), manifest, f"volume {backups_volume(project)}: {backup_id}/")


def _write_files(
    project: Project, docker: Docker, helper: _Helper, backup_id: str, report: Progress
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The dump and the volume archives into the backup's directory: what the manifest records of them."""
    config = project.config
    database: dict[str, Any] | None = None
    if config.database is not None:
        _dump_database(project, docker, backup_id, report)
        meta = helper.run("read_db", f"{_DIR}/{backup_id}")
        digest = helper.run("hash", f"{_DIR}/{backup_id}/database.dump")
        database = {
            "engine": "postgres",
            "file": "database.dump",
            "image": config.images.postgres,
            "name": config.database.name,
            **digest,
            "rows": meta["rows"],
            "alembic": meta["alembic"],
        }
    volumes: dict[str, Any] = {}
    if config.app.volumes:
        report(f"archiving the volumes {', '.join(sorted(config.app.volumes))} (SQLite through its backup API)")
        pairs = [f"{v}={_VOLUMES}/{v}" for v in sorted(config.app.volumes)]
        volumes = helper.run("archive", f"{_DIR}/{backup_id}", *pairs)
    return database, volumes


def verify_backup(project: Project, docker: Docker, backup_id: str, report: Progress = lambda _: None) -> BackupResult:
    """Verify an existing backup again (its files may have changed since): the manifest records the outcome."""
    known = list_backups(project.config, docker)
    if all(b.id != backup_id for b in known):
        ids = ", ".join(b.id for b in known) or "none"
        raise UserError(f"there is no backup {backup_id!r}; the backups on the server: {ids} (`composekit backups`)")
    helper = _Helper(project, docker, f"{project.config.name}-backup-verify-{backup_id.lower()}", with_volumes=False)
    try:
        raw = docker.helper_exec(helper.name, ["cat", f"{_DIR}/{backup_id}/manifest.json"])
        manifest = _verify(project, docker, helper, json.loads(raw), report)
    finally:
        helper.close()
    return BackupResult(parse_manifest(manifest), manifest, f"volume {backups_volume(project)}: {backup_id}/")


def check_files(project: Project, docker: Docker, backup_id: str) -> list[str]:
    """The problems of a backup's files against its manifest now (checksums, archives extracted, SQLite's
    integrity), without touching the manifest: what a restore checks before it changes anything."""
    helper = _Helper(project, docker, f"{project.config.name}-backup-check-{backup_id.lower()}", with_volumes=False)
    try:
        problems: list[str] = helper.run("verify", f"{_DIR}/{backup_id}", f"/tmp/check-{backup_id}")
    finally:
        helper.close()
    return problems


def _verify(
    project: Project, docker: Docker, helper: _Helper, manifest: dict[str, Any], report: Progress
) -> dict[str, Any]:
    backup_id = manifest["id"]
    report(f"verifying backup {backup_id}: checksums, archives extracted, SQLite integrity")
    problems: list[str] = helper.run("verify", f"{_DIR}/{backup_id}", f"/tmp/verify-{backup_id}")
    checks = ["checksums of every file"]
    if manifest.get("volumes"):
        checks.append("volume archives extracted, every file's checksum, SQLite integrity_check")
    database = manifest.get("database")
    if database is not None and not any(p.startswith("database:") for p in problems):
        report("verifying the dump: pg_restore into a throwaway PostgreSQL, row counts compared")
        db_problems, db_checks = _verify_database(project, docker, manifest)
        problems += db_problems
        checks += db_checks
    manifest = set_verification(manifest, problems, checks, datetime.now(UTC))
    helper.write_manifest(backup_id, manifest)
    return manifest


def _verify_database(project: Project, docker: Docker, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    config = project.config
    db = config.database
    assert db is not None
    database = manifest["database"]
    name = f"{config.name}-backup-verify-db"
    envs = {"POSTGRES_USER": db.user, "POSTGRES_DB": db.name, "POSTGRES_HOST_AUTH_METHOD": "trust"}
    docker.start_database(
        name, database.get("image", config.images.postgres), envs, [(backups_volume(project), _DIR, "ro")]
    )
    try:
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", db.user, "-d", db.name]

        def observe() -> Poll[str]:
            ok, said = docker.try_exec(name, ready)
            return Poll(said, ok, False, said or "not ready")

        seen, timed_out = Deadline(120).poll(observe)
        if timed_out:
            return [f"database: the throwaway PostgreSQL did not start within 120 s ({seen.detail})"], []
        dump = f"{_DIR}/{manifest['id']}/{database['file']}"
        restore = ["pg_restore", "--exit-on-error", "--no-owner", "--no-acl", "-h", "127.0.0.1", "-U", db.user]
        ok, said = docker.try_exec(name, [*restore, "-d", db.name, dump])
        if not ok:
            last = said.splitlines()[-3:]
            return [f"database: pg_restore of {database['file']} failed: {' '.join(last) or 'no message'}"], []
        checks = ["pg_restore into a throwaway PostgreSQL"]
        ok, said = docker.try_exec(
            name, ["env", f"PGUSER={db.user}", f"PGDATABASE={db.name}", "bash", "-c", count_script()]
        )
        if not ok:
            return [f"database: counting the restored rows failed: {said[-300:]}"], checks
        rows, alembic = parse_counts(said)
        problems = compare_counts(database.get("rows", {}), rows)
        checks.append(f"row counts of {len(rows)} tables equal those at dump time")
        if alembic != database.get("alembic"):
            problems.append(
                f"database: the restored Alembic state is {alembic or 'none'}, {database.get('alembic') or 'none'} "
                "at dump time"
            )
        recorded = (manifest.get("migration") or {}).get("state")
        command = state_command(config.migrate)
        if command is not None and command.alembic and recorded is not None:
            checks.append("migration state equals the manifest's")
            if alembic != recorded:
                problems.append(
                    f"database: the restored migration state is {alembic or 'none'}, the manifest records {recorded} "
                    "(composekit's record of the last migration, migration.json)"
                )
        return problems, checks
    finally:
        with contextlib.suppress(DockerError):
            docker.remove_helper(name)


def download_backup(project: Project, docker: Docker, backup_id: str, target: Path) -> Path:
    """Copy the backup ``backup_id`` to ``target``/<id> on this machine."""
    if not target.is_dir():
        raise UserError(f"--download {target}: no such directory; create it first")
    if (target / backup_id).exists():
        raise UserError(f"--download: {target / backup_id} exists already; remove it or choose another directory")
    name = f"{project.config.name}-backup-download"
    docker.start_helper(name, project.config.images.python, [(backups_volume(project), _DIR, "ro")], [])
    try:
        docker.copy_out(name, f"{_DIR}/{backup_id}", target / backup_id)
    finally:
        docker.remove_helper(name)
    return target / backup_id
