"""backups/s3: every verified backup copied to an S3-compatible bucket, from the server. A helper container of the
app's image (the backups volume mounted, Docker's default bridge network, host.docker.internal mapped to the
server) runs runtime/s3_client.py, the standard library's HTTP and a SigV4 signer of its own: nothing is uploaded
from the deploying machine, and no SDK is added to the app's image.

The secret key is read from backups/s3/secret_access_key_file here and copied into the helper as a file (docker cp)
that the client deletes once read: no rendered file, environment variable, command line or `docker inspect` holds
it, and no message carries it.

Keys: <prefix>/<backup id>/{database.dump, volumes/<volume>.tar.gz, manifest.json}; the manifest goes last, so a
backup without one in the bucket is unfinished and not listed. An upload is verified when every PUT was answered
with the file's MD5 (sent as Content-MD5, the server checks it) and a LIST shows every key with its size; only then
does backups/keep delete older backups in the bucket."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..config.backup_storage import BackupS3
from ..config.project import Project
from ..errors import UserError
from ..render.names import app_image
from .backup import CAPS, backups_volume, list_backups
from .backup_manifest import BackupInfo, find_backup, keep_text, latest_verified, parse_manifest, retention
from .backup_restore import restore_steps
from .docker import Docker
from .wait import Progress

__all__ = [
    "BucketFetch",
    "bucket_label",
    "bucket_prefix",
    "fetch_from_bucket",
    "list_bucket",
    "s3_settings",
    "upload_backup",
]

_DIR = "/backups"
_SETTINGS = "/tmp/composekit-s3.json"
_HOSTS = [("host.docker.internal", "host-gateway")]


class _S3Failed(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def s3_source() -> str:
    return resources.files("composekit.runtime").joinpath("s3_client.py").read_text(encoding="utf-8")


def _s3(project: Project) -> BackupS3:
    backups = project.config.backups
    assert backups is not None and backups.s3 is not None
    return backups.s3


def bucket_prefix(project: Project) -> str:
    """Where the stack's backups go in the bucket: backups/s3/prefix, else the stack's name."""
    s3 = _s3(project)
    return s3.prefix if s3.prefix is not None else project.config.name


def bucket_label(project: Project) -> str:
    s3 = _s3(project)
    return f"s3://{s3.bucket}/{bucket_prefix(project)}/ at {s3.endpoint}"


def s3_settings(project: Project) -> dict[str, str]:
    """What the helper's client needs, the secret key read from its file (never printed)."""
    s3 = _s3(project)
    path = project.root / s3.secret_access_key_file
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(
            f"backups/s3/secret_access_key_file: cannot read {s3.secret_access_key_file} ({exc.strerror}); put the "
            "bucket's secret access key in it"
        ) from None
    if not secret:
        raise UserError(
            f"backups/s3/secret_access_key_file: {s3.secret_access_key_file} is empty; put the bucket's secret access "
            "key in it"
        )
    return {
        "endpoint": s3.endpoint,
        "bucket": s3.bucket,
        "region": s3.region,
        "prefix": bucket_prefix(project),
        "access_key_id": s3.access_key_id,
        "secret_access_key": secret,
    }


def _fix(project: Project, code: str) -> str:
    s3 = _s3(project)
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"):
        return (
            f"check backups/s3/access_key_id ({s3.access_key_id}) and the key in {s3.secret_access_key_file}: they "
            f"must be a pair that may list, read, write and delete objects in bucket {s3.bucket}"
        )
    if code == "NoSuchBucket":
        return f"create the bucket {s3.bucket} at {s3.endpoint}, or correct backups/s3/bucket"
    if code == "unreachable":
        return (
            f"check backups/s3/endpoint ({s3.endpoint}): the upload runs on the server, in a container on Docker's "
            "default bridge network, so the endpoint must be reachable from there"
        )
    return f"check backups/s3 (endpoint {s3.endpoint}, bucket {s3.bucket}, region {s3.region})"


class _Helper:
    """The helper container of one bucket operation: the app's image, the backups volume, the bridge network."""

    def __init__(self, project: Project, docker: Docker, name: str, writable: bool) -> None:
        self.project, self.docker, self.name = project, docker, name
        self.settings = s3_settings(project)
        mounts = [(backups_volume(project), _DIR, "rw" if writable else "ro")]
        docker.start_helper(name, app_image(project.config), mounts, CAPS, network="bridge", hosts=_HOSTS)
        self.source = s3_source()

    def run(self, command: str, *args: str) -> Any:
        with tempfile.TemporaryDirectory(prefix="composekit-s3-") as tmp:
            local = Path(tmp) / "settings.json"
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.settings, f)
            self.docker.copy_in(self.name, local, _SETTINGS)
        said = json.loads(
            self.docker.helper_python(self.name, self.source, [command, _SETTINGS, *args]).splitlines()[-1]
        )
        if isinstance(said, dict) and "error" in said:
            code = said.get("code") or ("unreachable" if "cannot reach" in said["error"] else "")
            raise _S3Failed(str(said["error"]), code)
        return said

    def close(self) -> None:
        self.docker.remove_helper(self.name)


def _helper(project: Project, docker: Docker, what: str, writable: bool = False) -> _Helper:
    if not docker.image_exists(app_image(project.config)):
        raise UserError(
            f"the app image {app_image(project.config)} is not on the engine, and the bucket is reached from a "
            "container of it: deploy first (`composekit up`)"
        )
    return _Helper(project, docker, f"{project.config.name}-backup-s3-{what}", writable)


def upload_backup(project: Project, docker: Docker, backup_id: str, report: Progress = lambda _: None) -> str | None:
    """Upload the verified backup ``backup_id`` and, once the upload is verified, apply backups/keep to the bucket.
    None when done, else what failed with the fix (the backup stays in the backups volume either way)."""
    where = bucket_label(project)
    report(f"uploading backup {backup_id} to {where}")
    helper = _helper(project, docker, "upload")
    try:
        done = helper.run("upload", f"{_DIR}/{backup_id}")
        report(
            f"uploaded {len(done['files'])} files ({done['bytes']} bytes) to s3://{_s3(project).bucket}/"
            f"{done['prefix']}: every PUT answered with the file's MD5, every size listed back"
        )
        keep = project.config.backups.keep_rule() if project.config.backups is not None else None
        if keep is not None:
            old = retention([parse_manifest(m) for m in helper.run("list")], keep, made=backup_id)
            if old:
                removed = helper.run("delete", *old)
                report(
                    f"deleted {len(removed)} older backups from the bucket (backups/keep is {keep_text(keep)}): "
                    + ", ".join(removed)
                )
    except _S3Failed as exc:
        return f"the upload of backup {backup_id} to {where} failed: {exc}; {_fix(project, exc.code)}"
    finally:
        helper.close()
    return None


def _bucket_manifests(project: Project, docker: Docker) -> list[dict[str, Any]]:
    helper = _helper(project, docker, "list")
    try:
        return list(helper.run("list"))
    except _S3Failed as exc:
        raise UserError(
            f"cannot list the backups in {bucket_label(project)}: {exc}; {_fix(project, exc.code)}"
        ) from None
    finally:
        helper.close()


def list_bucket(project: Project, docker: Docker) -> list[BackupInfo]:
    """Every backup in the bucket with its manifest, oldest first."""
    return [parse_manifest(m) for m in _bucket_manifests(project, docker)]


@dataclass(frozen=True)
class BucketFetch:
    """The backup a restore takes: its id, and whether it came from the bucket (or, with --dry-run, would: then
    ``steps`` says what the restore would do)."""

    backup_id: str
    from_bucket: bool = False
    steps: tuple[str, ...] = ()


def fetch_from_bucket(
    project: Project, docker: Docker, wanted: str, *, dry_run: bool, report: Progress = lambda _: None
) -> BucketFetch:
    """``wanted`` (an id or ``latest``) as a backup in the backups volume: one there already is taken as it is; one
    only the bucket holds (or a newer verified ``latest``) is downloaded into the volume, every file's size and sha256
    checked against its manifest (nothing is left behind on a mismatch). With ``dry_run`` nothing is downloaded."""
    local = list_backups(project.config, docker)
    if wanted != "latest" and any(b.id == wanted for b in local):
        return BucketFetch(wanted)
    manifests = _bucket_manifests(project, docker)
    remote = [parse_manifest(m) for m in manifests]
    if wanted == "latest":
        newest = latest_verified(local + remote)
        if newest is None or any(b.id == newest.id for b in local):
            return BucketFetch(wanted)
        wanted = newest.id
    try:
        backup = find_backup(remote, wanted)
    except ValueError:
        return BucketFetch(wanted)  # in neither place: the restore's plan says what exists
    where = bucket_label(project)
    if not backup.verified:
        raise UserError(
            f"backup {backup.id} in {where} is {backup.status}, not verified: only a verified backup is restored; "
            "choose another (`composekit backups`)"
        )
    manifest = next(m for m in manifests if m.get("id") == backup.id)
    if dry_run:
        download = (
            f"download backup {backup.id} from {where} into volume {backups_volume(project)}, every file checked "
            "against its manifest"
        )
        steps = restore_steps(
            project, backup, manifest.get("database") is not None, sorted(manifest.get("volumes") or {})
        )
        return BucketFetch(backup.id, True, (download, *steps))
    docker.create_labelled_volume(backups_volume(project), {"composekit.backups": project.config.name})
    report(f"downloading backup {backup.id} from {where}")
    helper = _helper(project, docker, "download", writable=True)
    try:
        got = helper.run("download", _DIR, backup.id)
    except _S3Failed as exc:
        raise UserError(
            f"the download of backup {backup.id} from {where} failed: {exc}; {_fix(project, exc.code)} (nothing was "
            "changed)"
        ) from None
    finally:
        helper.close()
    if got["problems"]:
        raise UserError(
            f"backup {backup.id} in {where} does not match its manifest ({'; '.join(got['problems'][:3])}), so it was "
            "not kept and nothing was changed; choose another backup (`composekit backups`)"
        )
    report(f"downloaded backup {backup.id} ({got['files']} files, each equal to its manifest's sha256)")
    return BucketFetch(backup.id, True)
