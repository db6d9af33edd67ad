"""composekit/runtime/s3_client.py, the standard-library S3 client of backups/s3: its Signature Version 4 compared
with botocore's S3 signer (the AWS SDK's own) for the same requests, and its commands against a local stand-in
server that checks every signature the same way (botocore again), so nothing here needs Docker or a network."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from composekit.runtime import s3_client

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = datetime.datetime(2026, 12, 3, 11, 0, 0)


def _botocore(
    method: str, url: str, query: dict[str, str], headers: dict[str, str], body: bytes, region: str
) -> dict[str, str]:
    """What botocore's S3SigV4Auth sends for this request at WHEN (its clock patched). botocore is imported here, not at
    collection: it is a tenth of a second of CPU at every xdist worker's start, and only this module uses it."""
    from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    parts = urlsplit(url)
    request = AWSRequest(
        method=method,
        url=f"{parts.scheme}://{parts.netloc}{quote(parts.path, safe='/~')}",
        params=query,
        headers=headers,
        data=body,
    )
    auth = S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", region)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("botocore.auth.get_current_datetime", lambda: WHEN)
        auth.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


def _ours(
    method: str, url: str, query: dict[str, str], headers: dict[str, str], body: bytes, region: str
) -> dict[str, str]:
    signed = s3_client.sign(
        method,
        url,
        query,
        headers,
        hashlib.sha256(body).hexdigest(),
        KEY_ID,
        SECRET,
        region,
        WHEN.strftime("%Y%m%dT%H%M%SZ"),
    )
    return {k.lower(): v for k, v in signed.items()}


CASES = [
    ("GET", "http://172.17.0.1:9000/bucket/backups/20261203T110000Z/manifest.json", {}, {}, b"", "us-east-1"),
    (
        "PUT",
        "https://s3.eu-central-1.amazonaws.com/my-bucket/notes/20261203T110000Z/volumes/data.tar.gz",
        {},
        {"content-length": "11", "content-md5": "XrY7u+Ae7tCTyyK7j1rNww==", "content-type": "application/octet-stream"},
        b"hello world",
        "eu-central-1",
    ),
    (
        "GET",
        "http://minio.internal:9000/b",
        {"list-type": "2", "prefix": "notes/", "continuation-token": "1/ab+c=="},
        {},
        b"",
        "us-east-1",
    ),
    ("DELETE", "https://s3.example.com/bucket/a key with spaces & ümlauts/x=y.dump", {}, {}, b"", "auto"),
    ("PUT", "http://host.docker.internal:4566/bucket/p/empty", {}, {"content-length": "0"}, b"", "us-west-2"),
]


@pytest.mark.parametrize(("method", "url", "query", "headers", "body", "region"), CASES)
def test_the_signature_is_botocores(
    method: str, url: str, query: dict[str, str], headers: dict[str, str], body: bytes, region: str
) -> None:
    theirs = _botocore(method, url, query, headers, body, region)
    ours = _ours(method, url, query, headers, body, region)
    assert ours["authorization"] == theirs["authorization"]
    assert (ours["x-amz-date"], ours["x-amz-content-sha256"]) == (
        theirs["x-amz-date"],
        theirs["x-amz-content-sha256"],
    )


def test_a_different_secret_gives_a_different_signature() -> None:
    method, url, query, headers, body, region = CASES[0]
    ours = _ours(method, url, query, headers, body, region)
    other = s3_client.sign(method, url, query, headers, hashlib.sha256(body).hexdigest(), KEY_ID, "x", region, "x" * 16)
    assert ours["authorization"] != other["Authorization"]


def test_an_error_answer_names_its_code_and_message() -> None:
    body = b"<Error><Code>InvalidAccessKeyId</Code><Message>The key does not exist.</Message></Error>"
    error = s3_client.error_of(403, body, "PUT notes/x/manifest.json")
    assert str(error) == "PUT notes/x/manifest.json: HTTP 403 InvalidAccessKeyId: The key does not exist."
    assert (error.status, error.code) == (403, "InvalidAccessKeyId")


class _Bucket(BaseHTTPRequestHandler):
    """A path-style S3 stand-in that checks every request's signature with botocore (it refuses a wrong one the way
    S3 does) and Content-MD5, and serves PUT, GET, DELETE and ListObjectsV2 (two keys a page)."""

    objects: dict[str, bytes]
    secret: str

    def log_message(self, *_: Any) -> None:
        pass

    def _check(self, body: bytes) -> bool:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        given = headers.pop("authorization", "")
        request = AWSRequest(
            method=self.command,
            url=f"http://{headers['host']}{parts.path}",
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k: v for k, v in headers.items() if k not in ("x-amz-date",)},
            data=body,
        )
        amz = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("botocore.auth.get_current_datetime", lambda: amz)
            S3SigV4Auth(Credentials(KEY_ID, self.secret), "s3", "us-east-1").add_auth(request)
        if request.headers["Authorization"] != given:
            self._answer(403, b"<Error><Code>SignatureDoesNotMatch</Code><Message>mismatch</Message></Error>")
            return False
        return True

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _key(self) -> str:
        return urlsplit(self.path).path.split("/", 2)[2] if self.path.count("/") >= 2 else ""

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not self._check(body):
            return
        md5 = hashlib.md5(body)
        if base64.b64encode(md5.digest()).decode() != self.headers["Content-MD5"]:
            self._answer(400, b"<Error><Code>BadDigest</Code></Error>")
            return
        self.objects[self._key()] = body
        self._answer(200, headers={"ETag": f'"{md5.hexdigest()}"'})

    def do_GET(self) -> None:
        if not self._check(b""):
            return
        query = dict(parse_qsl(urlsplit(self.path).query))
        if query.get("list-type") == "2":
            keys = sorted(k for k in self.objects if k.startswith(query.get("prefix", "")))
            start = int(query.get("continuation-token", "0"))
            page = keys[start : start + 2]
            more = start + 2 < len(keys)
            ns = "http://s3.amazonaws.com/doc/2006-03-01/"
            items = "".join(f"<Contents><Key>{k}</Key><Size>{len(self.objects[k])}</Size></Contents>" for k in page)
            token = f"<NextContinuationToken>{start + 2}</NextContinuationToken>" if more else ""
            xml = f'<ListBucketResult xmlns="{ns}">{items}<IsTruncated>{str(more).lower()}</IsTruncated>{token}'
            self._answer(200, (xml + "</ListBucketResult>").encode())
            return
        if self._key() not in self.objects:
            self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        self._answer(200, self.objects[self._key()])

    def do_DELETE(self) -> None:
        if self._check(b""):
            self.objects.pop(self._key(), None)
            self._answer(204)


@pytest.fixture
def bucket() -> Iterator[tuple[dict[str, bytes], dict[str, Any]]]:
    objects: dict[str, bytes] = {}
    handler = type("Handler", (_Bucket,), {"objects": objects, "secret": SECRET})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits for serve_forever's next poll: 0.5 s by default, at every test's teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    settings = {
        "endpoint": f"http://127.0.0.1:{server.server_address[1]}",
        "bucket": "bk",
        "region": "us-east-1",
        "prefix": "notes",
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
    }
    yield objects, settings
    server.shutdown()
    server.server_close()


def _backup_dir(root: Path, backup_id: str) -> Path:
    d = root / backup_id
    (d / "volumes").mkdir(parents=True)
    dump, archive = b"dump bytes" * 100, b"archive bytes"
    (d / "database.dump").write_bytes(dump)
    (d / "volumes" / "data.tar.gz").write_bytes(archive)
    manifest = {
        "id": backup_id,
        "status": "verified",
        "database": {"file": "database.dump", "size": len(dump), "sha256": hashlib.sha256(dump).hexdigest()},
        "volumes": {
            "data": {
                "file": "volumes/data.tar.gz",
                "size": len(archive),
                "sha256": hashlib.sha256(archive).hexdigest(),
                "files": [{"path": "app.db"}],
            }
        },
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_upload_list_download_delete_round_trip(
    bucket: tuple[dict[str, bytes], dict[str, Any]], tmp_path: Path
) -> None:
    objects, settings = bucket
    client = s3_client.Client(settings)
    local = tmp_path / "local"
    for backup_id in ("20261203T110000Z", "20261204T110000Z"):
        done = s3_client.upload(client, settings, str(_backup_dir(local, backup_id)))
        assert [f["key"] for f in done["files"]][-1] == f"notes/{backup_id}/manifest.json"  # the manifest last
    assert sorted(objects) == sorted(
        f"notes/{i}/{p}"
        for i in ("20261203T110000Z", "20261204T110000Z")
        for p in ("database.dump", "volumes/data.tar.gz", "manifest.json")
    )
    listed = s3_client.list_bucket(client, settings)  # six keys: three pages of two
    assert [(m["id"], m["objects"]) for m in listed] == [("20261203T110000Z", 3), ("20261204T110000Z", 3)]
    assert "files" not in listed[0]["volumes"]["data"]

    restored = tmp_path / "restored"
    restored.mkdir()
    got = s3_client.download(client, settings, str(restored), "20261204T110000Z")
    assert got == {"id": "20261204T110000Z", "problems": [], "files": 3}
    for name in ("database.dump", "volumes/data.tar.gz", "manifest.json"):
        assert (restored / "20261204T110000Z" / name).read_bytes() == (local / "20261204T110000Z" / name).read_bytes()

    objects["notes/20261203T110000Z/database.dump"] = b"flipped"
    bad = s3_client.download(client, settings, str(restored), "20261203T110000Z")
    assert bad["problems"][0].startswith("database.dump does not match its manifest")
    assert sorted(p.name for p in restored.iterdir()) == ["20261204T110000Z"]  # nothing left behind

    assert s3_client.delete(client, settings, ["20261203T110000Z"]) == ["20261203T110000Z"]
    assert not any(k.startswith("notes/20261203T110000Z/") for k in objects)


def test_a_wrong_secret_is_refused_and_named(bucket: tuple[dict[str, bytes], dict[str, Any]], tmp_path: Path) -> None:
    objects, settings = bucket
    client = s3_client.Client({**settings, "secret_access_key": "wrong"})
    with pytest.raises(s3_client.S3Error, match=r"^PUT notes/20261203T110000Z/database.dump: HTTP 403 Signature"):
        s3_client.upload(client, settings, str(_backup_dir(tmp_path, "20261203T110000Z")))
    assert objects == {}


def test_main_reads_its_settings_once_and_prints_errors_as_json(
    bucket: tuple[dict[str, bytes], dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _objects, settings = bucket
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({**settings, "endpoint": "http://127.0.0.1:9"}))
    assert s3_client.main(["list", str(path)]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["error"].startswith("GET (bucket): cannot reach http://127.0.0.1:9")
    assert SECRET not in json.dumps(said)
    assert not path.exists()


def test_a_file_above_one_put_is_refused_before_sending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_client, "MAX_PUT", 10)
    (tmp_path / "f").write_bytes(b"x" * 11)
    client = s3_client.Client(
        {"endpoint": "http://127.0.0.1:9", "bucket": "b", "region": "r", "access_key_id": "a", "secret_access_key": "s"}
    )
    with pytest.raises(s3_client.S3Error, match="11 bytes is more than S3 takes in one PUT"):
        client.put_file("k", str(tmp_path / "f"))
