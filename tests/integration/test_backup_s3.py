"""backups/s3 for real: the fastapi template (SQLite in the `data` volume) on the real engine, uploading to moto's S3
server (`moto[server]`, an emulator of the S3 API) that this module starts on the Docker bridge's gateway address, where
the upload helper reaches it as host.docker.internal. Moto's IAM authentication is switched on after the bucket and a
user with an access key are made: from then on it checks every request's SigV4 signature (with botocore) and refuses
an unknown key or a wrong secret, as S3 does.

A backup lands in the bucket (the objects' sha256 equal to the manifest's, the manifest last); with the backups volume
removed, `restore` downloads it from the bucket and restores it; backups/keep: 1 deletes the older backup from the
bucket after the next verified upload; a wrong secret key fails `backup` naming the bucket and the fix, the backup
kept on the server; the secret is in no output, rendered file or container.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]  # the test extra's moto[server] brings it
import httpx
import pytest

from .conftest import REPO, Stack
from .test_backup import _remove_backups_volume

pytestmark = pytest.mark.integration

SQLITE_TEMPLATE = REPO / "stacks" / "fastapi"
BUCKET = "composekit-backups"
SECRET_MARK = "s3-secret-never-printed"


def _bridge_gateway() -> str:
    """The host's address on the engine's default bridge. Read from the bridge's interface (docker0): the engine
    leaves the Gateway out of `network inspect` until its first restart on a new machine (moby/moby#26799)."""
    name = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", '{{index .Options "com.docker.network.bridge.name"}}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    shown = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", name or "docker0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    addresses = [a["local"] for link in json.loads(shown) for a in link.get("addr_info", []) if a.get("local")]
    if not addresses:
        pytest.fail(f"the engine's default bridge ({name or 'docker0'}) has no IPv4 address on this machine")
    return str(addresses[0])


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Moto:
    def __init__(self, host: str, port: int) -> None:
        self.url = f"http://{host}:{port}"
        self.port = port

    def client(self, service: str, key: tuple[str, str] | None = None) -> Any:
        key_id, secret = key or ("testing", "testing")
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[Moto, tuple[str, str]]]:
    """moto_server on the bridge gateway (reachable from this machine and its containers only), a bucket, an IAM user
    allowed s3:* with an access key; then IAM authentication on (every later request signed and checked)."""
    host = _bridge_gateway()
    port = _free_port(host)
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"moto-{port}.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", host, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        moto = Moto(host, port)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{moto.url}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"moto_server did not start on {moto.url} (see {log.name})")
                time.sleep(0.2)
        iam = moto.client("iam")
        iam.create_user(UserName="backups")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="backups", PolicyName="s3", PolicyDocument=json.dumps(policy))
        made = iam.create_access_key(UserName="backups")["AccessKey"]
        key = (made["AccessKeyId"], made["SecretAccessKey"])
        moto.client("s3").create_bucket(Bucket=BUCKET)
        httpx.post(f"{moto.url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
        with pytest.raises(Exception, match=r"InvalidAccessKeyId|InvalidClientTokenId"):
            moto.client("s3").list_objects_v2(Bucket=BUCKET)  # authentication is on: an unknown key is refused
        yield moto, key
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server this fixture started, by its PID
        server.wait(timeout=30)
        log.close()


def _objects(moto: Moto, key: tuple[str, str], prefix: str) -> dict[str, bytes]:
    s3 = moto.client("s3", key)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def _no_secret(secret: str, *results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        for text in (result.stdout, result.stderr):
            assert secret not in text and SECRET_MARK not in text


def test_a_backup_goes_to_the_bucket_and_restores_from_it(
    moto: tuple[Moto, tuple[str, str]], make_stack: Any, tmp_path: Path
) -> None:
    server, key = moto
    # The real secret of the moto user, with a marker in no file but the secret file: moto compares signatures only.
    secret_file = "secrets/s3_secret_access_key"
    s3 = {
        "endpoint": f"http://host.docker.internal:{server.port}",
        "bucket": BUCKET,
        "access_key_id": key[0],
        "secret_access_key_file": secret_file,
    }
    stack: Stack = make_stack(SQLITE_TEMPLATE, "bk-s3", backups={"keep": 1, "s3": s3})
    _remove_backups_volume(stack.name)
    (stack.dir / "secrets").mkdir(exist_ok=True)
    (stack.dir / secret_file).write_text(key[1] + "\n")
    try:
        stack.ck("up", "--no-smoke")
        stack.wait_https("/")
        assert stack.https("/notes", method="POST", json={"text": "kept in the bucket"}).status_code == 201

        made = stack.ck("backup", timeout=300)
        first = made.stdout.strip().splitlines()[-1]
        assert f"uploading backup {first} to s3://{BUCKET}/bk-s3/ at http://host.docker.internal" in made.stderr
        objects = _objects(server, key, f"bk-s3/{first}/")
        assert sorted(objects) == [f"bk-s3/{first}/manifest.json", f"bk-s3/{first}/volumes/data.tar.gz"]
        manifest = json.loads(objects[f"bk-s3/{first}/manifest.json"])
        assert manifest["status"] == "verified"
        archive = objects[f"bk-s3/{first}/volumes/data.tar.gz"]
        assert (len(archive), hashlib.sha256(archive).hexdigest()) == (
            manifest["volumes"]["data"]["size"],
            manifest["volumes"]["data"]["sha256"],
        )
        listed = {b["id"]: b for b in json.loads(stack.ck("backups", "--json").stdout)}
        assert listed[first]["where"] == ["server", "s3"]
        _no_secret(key[1], made)
        for path in (stack.dir / ".composekit").rglob("*"):
            if path.is_file():
                assert key[1].encode() not in path.read_bytes(), path

        # The server's copy gone, the database file deleted: the restore takes the backup from the bucket.
        _remove_backups_volume(stack.name)
        assert json.loads(stack.ck("backups", "--json").stdout)[0]["where"] == ["s3"]
        subprocess.run(
            ["docker", "run", "--rm", "-v", f"{stack.name}_data:/data", stack.env.python_image, "rm", "/data/app.db"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        dry = stack.ck("restore", first, "--dry-run")
        assert f"download backup {first} from s3://{BUCKET}/bk-s3/" in dry.stderr
        assert "--dry-run: nothing was changed" in dry.stderr
        restored = stack.ck("restore", first, timeout=600)
        assert f"downloaded backup {first} (2 files, each equal to its manifest's sha256)" in restored.stderr
        assert f"backup {first} restored" in restored.stderr
        assert stack.wait_https("/notes").json() == [{"id": 1, "text": "kept in the bucket"}]
        _no_secret(key[1], restored, dry)

        # backups/keep: 1 applies to the bucket after the next verified upload.
        second = stack.ck("backup", timeout=300)
        second_id = second.stdout.strip().splitlines()[-1]
        assert f"deleted 1 older backups from the bucket (backups/keep is 1): {first}" in second.stderr
        assert {k.split("/")[1] for k in _objects(server, key, "bk-s3/")} == {second_id}

        # A wrong secret: the backup is made and kept on the server, the upload refused, the error names the fix.
        (stack.dir / secret_file).write_text("wrong-" + SECRET_MARK + "\n")
        failed = stack.ck("backup", check=False, timeout=300)
        assert failed.returncode == 1
        assert "the upload of backup " in failed.stderr and f"to s3://{BUCKET}/bk-s3/" in failed.stderr
        assert "SignatureDoesNotMatch" in failed.stderr
        assert f"check backups/s3/access_key_id ({key[0]}) and the key in {secret_file}" in failed.stderr
        assert "is verified and kept on the server" in failed.stderr
        listing = stack.ck("backups", check=False)
        assert listing.returncode == 1
        assert f"cannot list the backups in s3://{BUCKET}/bk-s3/" in listing.stderr
        _no_secret(key[1], failed, listing)
        local = subprocess.run(
            ["docker", "run", "--rm", "-v", f"{stack.name}_backups:/b:ro", stack.env.python_image, "ls", "/b"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        assert len([i for i in local if i > second_id]) == 1  # the new backup, kept on the server
        assert {k.split("/")[1] for k in _objects(server, key, "bk-s3/")} == {second_id}
    finally:
        stack.ck("down", "--delete-volumes", check=False, timeout=120)
        _remove_backups_volume(stack.name)
