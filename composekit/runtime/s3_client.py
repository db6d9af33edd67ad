"""Runs inside a helper container of the app's image (composekit/engine/backup_s3.py passes this file as
``python3 -c``): copies backups between the backups volume and an S3-compatible bucket. The standard library only:
a small AWS Signature Version 4 client (PUT, GET, LIST, DELETE, path-style URLs) of its own.

The settings, the secret key included, come from a JSON file composekit copies into the helper (never the command
line or the environment, so `docker inspect` and `ps` show no secret); no message ever carries the secret.

One PUT per file: S3 takes at most 5 GiB in a single PUT (MAX_PUT), and a larger file is refused before anything is
sent (multipart uploads are not implemented). Every PUT carries the file's MD5 (Content-MD5: the server refuses a
body that does not match) and its SHA-256 (signed, x-amz-content-sha256); the answer's ETag must be the MD5, and a
LIST afterwards must show every key with its size: only then is an upload verified.

    upload SETTINGS BACKUP_DIR       upload <BACKUP_DIR>'s files (the manifest last); print what was uploaded
    list SETTINGS                    print the manifest of every backup in the bucket (per-file lists dropped)
    download SETTINGS BACKUPS_DIR ID fetch backup ID into BACKUPS_DIR/ID, checked against its manifest
    delete SETTINGS ID...            delete those backups' objects; print their ids
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, urlsplit

MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
MAX_PUT = 5 * 1024**3  # S3's limit for a single PUT
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_TIMEOUT = 120


class S3Error(Exception):
    """What the server answered (status, its error code and message), or why it could not be reached."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


# -- Signature Version 4 (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html) --


def _uri_encode(text: str, safe: str) -> str:
    return quote(text, safe=safe + "~")


def canonical_query(query: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted((_uri_encode(k, ""), _uri_encode(v, "")) for k, v in query.items()))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign(
    method: str,
    url: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload_sha256: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    amz_date: str,
) -> dict[str, str]:
    """``headers`` plus x-amz-date, x-amz-content-sha256 and Authorization for this request (service s3; the host
    header is taken from ``url``; every header given is signed). ``amz_date``: ``YYYYMMDDTHHMMSSZ``, UTC."""
    parts = urlsplit(url)
    out = dict(headers)
    out["host"] = parts.netloc
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_sha256
    canonical = {k.lower().strip(): " ".join(str(v).split()) for k, v in out.items()}
    signed = ";".join(sorted(canonical))
    request = "\n".join(
        [
            method.upper(),
            _uri_encode(parts.path or "/", "/"),
            canonical_query(query),
            "".join(f"{k}:{canonical[k]}\n" for k in sorted(canonical)),
            signed,
            payload_sha256,
        ]
    )
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()])
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), amz_date[:8])
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return out


# -- the client --


def file_digests(path: str) -> tuple[int, str, str]:
    """(size, sha256 hex, md5 hex) of a file."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


def error_of(status: int, body: bytes, what: str) -> S3Error:
    """An S3 error answer (XML: Code, Message) as an S3Error naming ``what`` was asked."""
    code = message = ""
    try:
        root = ET.fromstring(body)
        code = root.findtext("Code") or ""
        message = root.findtext("Message") or ""
    except ET.ParseError:
        message = body[:200].decode("utf-8", "replace").strip()
    said = ": ".join(p for p in (code, message) if p) or "no message"
    return S3Error(f"{what}: HTTP {status} {said}", status, code)


class Client:
    def __init__(self, settings: dict[str, Any]) -> None:
        endpoint = urlsplit(settings["endpoint"])
        self.scheme, self.netloc = endpoint.scheme, endpoint.netloc
        self.base = endpoint.path.rstrip("/")
        self.bucket = settings["bucket"]
        self.region = settings["region"]
        self.access_key_id = settings["access_key_id"]
        self.secret_access_key = settings["secret_access_key"]

    def _path(self, key: str = "") -> str:
        return f"{self.base}/{self.bucket}" + (f"/{key}" if key else "")

    def request(
        self,
        method: str,
        key: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        payload_sha256: str = EMPTY_SHA256,
        sink: Any = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One signed request; the answer's status, headers and body (streamed into ``sink`` when given and 200)."""
        query = query or {}
        path = self._path(key)
        url = f"{self.scheme}://{self.netloc}{path}"
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        signed = sign(
            method,
            url,
            query,
            headers or {},
            payload_sha256,
            self.access_key_id,
            self.secret_access_key,
            self.region,
            amz_date,
        )
        target = _uri_encode(path, "/") + (f"?{canonical_query(query)}" if query else "")
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.netloc, timeout=_TIMEOUT, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.netloc, timeout=_TIMEOUT)
        what = f"{method} {key or '(bucket)'}"
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in signed.items():
                conn.putheader(name, value)
            conn.endheaders()
            if body is not None:
                for chunk in iter(lambda: body.read(CHUNK), b""):
                    conn.send(chunk)
            answer = conn.getresponse()
            answer_headers = {k.lower(): v for k, v in answer.getheaders()}
            if answer.status == 200 and sink is not None:
                shutil.copyfileobj(answer, sink, CHUNK)
                return answer.status, answer_headers, b""
            data = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.__class__.__name__ if isinstance(exc, socket.timeout) else str(exc) or type(exc).__name__
            raise S3Error(f"{what}: cannot reach {self.scheme}://{self.netloc} ({reason})") from None
        finally:
            conn.close()
        if answer.status >= 300:
            raise error_of(answer.status, data, what)
        return answer.status, answer_headers, data

    def put_file(self, key: str, path: str) -> dict[str, Any]:
        size, sha, md5 = file_digests(path)
        if size > MAX_PUT:
            raise S3Error(f"PUT {key}: {size} bytes is more than S3 takes in one PUT (5 GiB); not uploaded")
        headers = {
            "content-length": str(size),
            "content-md5": base64.b64encode(bytes.fromhex(md5)).decode("ascii"),
            "content-type": "application/octet-stream",
        }
        with open(path, "rb") as f:
            _status, answer, _ = self.request("PUT", key, headers=headers, body=f, payload_sha256=sha)
        etag = answer.get("etag", "").strip('"')
        if etag and etag != md5:
            raise S3Error(f"PUT {key}: the server's ETag {etag} is not the file's MD5 {md5}")
        return {"key": key, "size": size, "sha256": sha}

    def get_file(self, key: str, path: str) -> None:
        with open(path, "wb") as f:
            self.request("GET", key, sink=f)

    def get_bytes(self, key: str) -> bytes:
        return self.request("GET", key)[2]

    def delete(self, key: str) -> None:
        self.request("DELETE", key)

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """Every (key, size) under ``prefix`` (ListObjectsV2, every page)."""
        found: list[tuple[str, int]] = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self.request("GET", "", query=query)[2])
            for item in root.iter(f"{_XMLNS}Contents"):
                found.append((item.findtext(f"{_XMLNS}Key") or "", int(item.findtext(f"{_XMLNS}Size") or 0)))
            if (root.findtext(f"{_XMLNS}IsTruncated") or "false") != "true":
                return found
            token = root.findtext(f"{_XMLNS}NextContinuationToken")


# -- the commands --


def backup_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The files of a backup its manifest records (path relative to the backup's directory, size, sha256)."""
    files = []
    database = manifest.get("database")
    if database is not None:
        files.append({"path": database["file"], "size": database["size"], "sha256": database["sha256"]})
    for entry in sorted((manifest.get("volumes") or {}).values(), key=lambda e: e["file"]):
        files.append({"path": entry["file"], "size": entry["size"], "sha256": entry["sha256"]})
    return files


def _prefix(settings: dict[str, Any]) -> str:
    prefix = settings.get("prefix", "").strip("/")
    return f"{prefix}/" if prefix else ""


def upload(client: Client, settings: dict[str, Any], backup_dir: str) -> dict[str, Any]:
    """Upload a backup's files, its manifest last (a backup without its manifest in the bucket is unfinished), then
    LIST the backup's keys and compare every size."""
    with open(os.path.join(backup_dir, MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    base = f"{_prefix(settings)}{manifest['id']}/"
    done = []
    for entry in backup_files(manifest):
        done.append(client.put_file(base + entry["path"], os.path.join(backup_dir, entry["path"])))
        if done[-1]["sha256"] != entry["sha256"]:
            raise S3Error(f"{entry['path']} changed since its verification (sha256 {done[-1]['sha256'][:12]})")
    done.append(client.put_file(base + MANIFEST, os.path.join(backup_dir, MANIFEST)))
    listed = dict(client.list(base))
    for item in done:
        if listed.get(item["key"]) != item["size"]:
            raise S3Error(
                f"after the upload, the bucket lists {item['key']} with {listed.get(item['key'], 'no')} bytes, not "
                f"{item['size']}"
            )
    return {"id": manifest["id"], "prefix": base, "files": done, "bytes": sum(i["size"] for i in done)}


def list_bucket(client: Client, settings: dict[str, Any]) -> list[dict[str, Any]]:
    prefix = _prefix(settings)
    keys = dict(client.list(prefix))
    found = []
    for key in sorted(keys):
        rest = key[len(prefix) :]
        backup_id, _, name = rest.partition("/")
        if name != MANIFEST:
            continue
        try:
            manifest = json.loads(client.get_bytes(key))
        except ValueError:
            manifest = {"id": backup_id, "status": "unreadable"}
        for entry in (manifest.get("volumes") or {}).values():
            entry.pop("files", None)
        manifest["objects"] = sum(1 for k in keys if k.startswith(f"{prefix}{backup_id}/"))
        found.append(manifest)
    return found


def download(client: Client, settings: dict[str, Any], backups_dir: str, backup_id: str) -> dict[str, Any]:
    """Backup ``backup_id`` into BACKUPS_DIR/.incoming-ID, every file's size and sha256 checked against the
    manifest, then renamed to BACKUPS_DIR/ID; on a mismatch nothing is left behind."""
    if "/" in backup_id or backup_id.startswith(".") or not backup_id:
        raise S3Error(f"not a backup id: {backup_id!r}")
    target = os.path.join(backups_dir, backup_id)
    if os.path.exists(target):
        raise S3Error(f"{backup_id} is in the backups volume already; nothing was downloaded")
    base = f"{_prefix(settings)}{backup_id}/"
    incoming = os.path.join(backups_dir, f".incoming-{backup_id}")
    shutil.rmtree(incoming, ignore_errors=True)
    os.makedirs(os.path.join(incoming, "volumes"))
    try:
        client.get_file(base + MANIFEST, os.path.join(incoming, MANIFEST))
        with open(os.path.join(incoming, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        problems = []
        for entry in backup_files(manifest):
            path = os.path.join(incoming, entry["path"])
            client.get_file(base + entry["path"], path)
            size, sha, _md5 = file_digests(path)
            if (size, sha) != (entry["size"], entry["sha256"]):
                problems.append(
                    f"{entry['path']} does not match its manifest (sha256 {sha[:12]}, {size} bytes; recorded "
                    f"{entry['sha256'][:12]}, {entry['size']} bytes)"
                )
        if problems:
            shutil.rmtree(incoming, ignore_errors=True)
            return {"id": backup_id, "problems": problems}
        os.rename(incoming, target)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return {"id": backup_id, "problems": [], "files": len(backup_files(manifest)) + 1}


def delete(client: Client, settings: dict[str, Any], ids: list[str]) -> list[str]:
    removed = []
    for backup_id in ids:
        if not backup_id or "/" in backup_id or backup_id.startswith("."):
            raise S3Error(f"not a backup id: {backup_id!r}")
        base = f"{_prefix(settings)}{backup_id}/"
        keys = [k for k, _size in client.list(base)]
        # The manifest first: a backup whose manifest is gone is no longer listed, even if a delete fails midway.
        for key in sorted(keys, key=lambda k: not k.endswith("/" + MANIFEST)):
            client.delete(key)
        if keys:
            removed.append(backup_id)
    return removed


def main(argv: list[str]) -> int:
    command, settings_path, args = argv[0], argv[1], argv[2:]
    with open(settings_path, encoding="utf-8") as f:
        settings = json.load(f)
    os.remove(settings_path)  # read once: the secret does not stay in the helper's filesystem
    client = Client(settings)
    result: Any
    try:
        if command == "upload":
            result = upload(client, settings, args[0])
        elif command == "list":
            result = list_bucket(client, settings)
        elif command == "download":
            result = download(client, settings, args[0], args[1])
        elif command == "delete":
            result = delete(client, settings, args)
        else:
            sys.stderr.write(f"unknown command {command}\n")
            return 2
    except S3Error as exc:
        result = {"error": str(exc), "status": exc.status, "code": exc.code}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
