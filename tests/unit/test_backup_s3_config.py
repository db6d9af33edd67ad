"""backups/s3 (config/backup_storage.py, engine/backup_s3.py's pure parts): its keys and messages word for word, the
secret key file checked and read, never shown, and the fixes an S3 error is answered with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from composekit.config import parse_config
from composekit.config.project import load_project
from composekit.engine import backup_s3
from composekit.errors import ConfigError, UserError

S3 = {
    "endpoint": "https://s3.eu-central-1.amazonaws.com",
    "bucket": "notes-backups",
    "region": "eu-central-1",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key_file": "secrets/s3_key",
}
BASE = {"name": "notes", "domain": "notes.example.com", "app": {"module": "app.main:app"}}


def _problems(s3: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, "backups": {"s3": s3}})
    return info.value.problems


def test_a_bucket_is_optional() -> None:
    assert parse_config({**BASE, "backups": {}}).backups.s3 is None  # type: ignore[union-attr]
    config = parse_config({**BASE, "backups": {"s3": S3}})
    s3 = config.backups.s3  # type: ignore[union-attr]
    assert (s3.region, s3.prefix) == ("eu-central-1", None)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"endpoint": "s3.amazonaws.com"},
            "composekit.yaml: backups/s3/endpoint: expected the S3 endpoint's URL, such as "
            '"https://s3.eu-central-1.amazonaws.com" (no bucket, no query), got "s3.amazonaws.com"',
        ),
        (
            {"bucket": "Notes_Backups"},
            "composekit.yaml: backups/s3/bucket: expected a bucket name: 3 to 63 lowercase letters, digits, dots and "
            'hyphens, got "Notes_Backups"',
        ),
        (
            {"prefix": "/backups/"},
            'composekit.yaml: backups/s3/prefix: expected a key prefix such as "backups/notes": letters, digits and '
            '"._-" between "/", got "/backups/"',
        ),
        (
            {"secret_access_key": "x"},
            "composekit.yaml: backups/s3/secret_access_key: unknown key",
        ),
    ],
)
def test_a_wrong_key_is_named(change: dict[str, Any], message: str) -> None:
    found = _problems({**S3, **change})
    assert found[0].startswith(message), found


def test_a_missing_key_is_named() -> None:
    found = _problems({k: v for k, v in S3.items() if k != "bucket"})
    assert found[0].startswith("composekit.yaml: backups/s3/bucket:"), found


def _project(tmp_path: Path, secret: str | None, prefix: str | None = None) -> Any:
    s3 = dict(S3) | ({"prefix": prefix} if prefix else {})
    (tmp_path / "composekit.yaml").write_text(json.dumps({**BASE, "backups": {"keep": 2, "s3": s3}}))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    if secret is not None:
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "s3_key").write_text(secret)
    return load_project((tmp_path / "composekit.yaml",))


def test_the_secret_key_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _project(tmp_path, None)
    assert info.value.problems == [
        "composekit.yaml: backups/s3/secret_access_key_file: 'secrets/s3_key' does not exist; put the bucket's "
        "secret access key in it (alone on one line) and keep it out of git"
    ]


def test_the_settings_carry_the_secret_and_the_redacted_config_does_not(tmp_path: Path) -> None:
    project = _project(tmp_path, "the-secret-key\n")
    assert backup_s3.s3_settings(project) == {
        "endpoint": "https://s3.eu-central-1.amazonaws.com",
        "bucket": "notes-backups",
        "region": "eu-central-1",
        "prefix": "notes",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "the-secret-key",
    }
    assert "the-secret-key" not in json.dumps(project.config.redacted())
    assert backup_s3.bucket_label(project) == "s3://notes-backups/notes/ at https://s3.eu-central-1.amazonaws.com"


def test_an_empty_secret_key_file_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, "\n")
    with pytest.raises(UserError) as info:
        backup_s3.s3_settings(project)
    assert str(info.value) == (
        "backups/s3/secret_access_key_file: secrets/s3_key is empty; put the bucket's secret access key in it"
    )


def test_a_prefix_replaces_the_stack_name(tmp_path: Path) -> None:
    project = _project(tmp_path, "k", prefix="offsite/notes")
    assert backup_s3.bucket_prefix(project) == "offsite/notes"


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (
            "SignatureDoesNotMatch",
            "check backups/s3/access_key_id (AKIAIOSFODNN7EXAMPLE) and the key in secrets/s3_key: they must be a pair "
            "that may list, read, write and delete objects in bucket notes-backups",
        ),
        ("InvalidAccessKeyId", "check backups/s3/access_key_id (AKIAIOSFODNN7EXAMPLE) and the key in secrets/s3_key"),
        (
            "NoSuchBucket",
            "create the bucket notes-backups at https://s3.eu-central-1.amazonaws.com, or correct backups/s3/bucket",
        ),
        ("unreachable", "check backups/s3/endpoint (https://s3.eu-central-1.amazonaws.com): the upload runs on the"),
        ("SlowDown", "check backups/s3 (endpoint https://s3.eu-central-1.amazonaws.com, bucket notes-backups"),
    ],
)
def test_each_s3_error_gets_its_fix(tmp_path: Path, code: str, fix: str) -> None:
    assert backup_s3._fix(_project(tmp_path, "k"), code).startswith(fix)
