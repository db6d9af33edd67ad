"""Secrets as environment variables, for real (app/secrets, database/variables): the app and its migration read each
value from their process environment, and the value is in no `docker inspect` of any container of the stack, no
rendered file, no layer of the app image, no container log, no output of `composekit up` or `composekit config`.

tests/integration/apps/secrets-app reports SHA-256 hashes of SECRET_KEY, DATABASE_URL and POSTGRES_PASSWORD (never
the values) as the app saw them, and as its migration saw them (written to the data volume), and connects to the
database with them. Two deployments: `database/variables: database_url` on the local engine, `postgres` over
`ssh://` (the test sshd, as in test_remote.py), each with SECRET_KEY in app/secrets.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pytest

from .conftest import REPO, Stack
from .sshd import ALIAS, ssh_config  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

APP = REPO / "tests" / "integration" / "apps" / "secrets-app"
DB = "shop"  # database/name and database/user of the app's composekit.yaml


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Deployed:
    """A deployed secrets-app with fresh random values (characters a URL must encode in the password)."""

    def __init__(self, stack: Stack, variables: str, up_output: str, swarm: bool = False) -> None:
        self.stack = stack
        self.variables = variables
        self.up_output = up_output
        self.swarm = swarm
        self.secret_key = (stack.dir / "secrets" / "secret_key").read_text().rstrip("\n")
        self.password = (stack.dir / "secrets" / "db_password").read_text().rstrip("\n")
        self.url = f"postgresql+psycopg://{DB}:{quote(self.password, safe='')}@db:5432/{DB}"

    @property
    def values(self) -> list[str]:
        """Every form a value could leak in: as written, the password percent-encoded, the whole URL."""
        return [self.secret_key, self.password, quote(self.password, safe=""), self.url]

    def containers(self) -> dict[str, Any]:
        """Every container of the stack (exited ones included) by name, and its service."""
        if not self.swarm:
            return {c.name: (service, c) for service, c in self.stack.containers().items()}
        label = f"com.docker.stack.namespace={self.stack.name}"
        found = self.stack.docker.container.list(all=True, filters=[("label", label)])
        prefix = f"{self.stack.name}_"
        return {
            c.name: ((c.config.labels or {})["com.docker.swarm.service.name"].removeprefix(prefix), c) for c in found
        }

    def app(self) -> Any:
        return next(c for service, c in self.containers().values() if service == "app" and c.state.running)

    def leaked(self, blob: bytes) -> list[str]:
        """Which forms ``blob`` holds, named (never the value itself, so a failure message leaks nothing)."""
        names = ["SECRET_KEY", "the password", "the percent-encoded password", "DATABASE_URL"]
        return [name for name, value in zip(names, self.values, strict=True) if value.encode() in blob]


def deploy(make_stack: Any, testenv: Any, name: str, variables: str, *up: str, **overrides: Any) -> Deployed:
    database: dict[str, str] = {"variables": variables}
    if variables == "database_url":
        database["url_scheme"] = "postgresql+psycopg"
    stack: Stack = make_stack(APP, name, database=database, images={"postgres": testenv.postgres_image}, **overrides)
    if overrides.get("mode") == "swarm":
        # This test's own volumes of an earlier run: a database initialised with another password must not decide
        # this one (an interrupted run may have left them).
        label = f"label=com.docker.stack.namespace={name}"
        left = subprocess.run(["docker", "volume", "ls", "-q", "--filter", label], capture_output=True, text=True)
        for volume in left.stdout.split():
            subprocess.run(["docker", "volume", "rm", volume], capture_output=True, timeout=60, check=True)
    (stack.dir / "secrets").mkdir()
    (stack.dir / "secrets" / "secret_key").write_text(secrets.token_urlsafe(32) + "\n")
    (stack.dir / "secrets" / "db_password").write_text(f"pw-{secrets.token_hex(12)} @/:%?#&=+$\n")
    result = stack.ck("up", "--no-smoke", *up)
    return Deployed(stack, variables, result.stdout + result.stderr, swarm=overrides.get("mode") == "swarm")


@pytest.fixture(scope="module")
def local(make_stack: Any, testenv: Any) -> Deployed:
    return deploy(make_stack, testenv, "secrets-url", "database_url")


@pytest.fixture(scope="module")
def remote(ssh_config: Path, make_stack: Any, testenv: Any) -> Iterator[Deployed]:  # noqa: F811
    deployed = deploy(make_stack, testenv, "secrets-ssh", "postgres", host=ALIAS)
    yield deployed
    # Down while the test sshd still runs: make_stack (set up by `local` before ssh_config) ends after it.
    deployed.stack.ck("down", "--delete-volumes", check=False, timeout=120)


def check_values_are_read(deployed: Deployed, first: bool = True) -> None:
    """The app and the migration (and the state command) saw the values, and reached the database with them."""
    expected = {"SECRET_KEY": sha256(deployed.secret_key)}
    if deployed.variables == "database_url":
        expected["DATABASE_URL"] = sha256(deployed.url)
    else:
        expected["POSTGRES_PASSWORD"] = sha256(deployed.password)
    response = deployed.stack.wait_https("/secrets")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["app"] == expected
    assert body["migrate"] == {"hashes": expected, "database": f"{DB}@{DB}"}
    assert body["database"] == f"{DB}@{DB}"
    # PID 1 of the app is gunicorn itself (secret_env.py replaced itself with it) and holds the values: the search
    # the leak checks use finds them where they are meant to be.
    app = deployed.app()
    read = "import sys; sys.stdout.write(open(sys.argv[1], 'rb').read().decode().replace(chr(0), chr(10)))"
    cmdline = str(deployed.stack.docker.container.execute(app, ["python3", "-c", read, "/proc/1/cmdline"]))
    assert "gunicorn" in cmdline and "secret_env.py" not in cmdline, cmdline
    environ = str(deployed.stack.docker.container.execute(app, ["python3", "-c", read, "/proc/1/environ"]))
    assert "SECRET_KEY" in deployed.leaked(environ.encode())
    if deployed.swarm:  # no state command in mode: swarm
        return
    # migrate/state_command (a one-off container of the migration's service) printed its hash of SECRET_KEY.
    state = "secret-" + sha256(deployed.secret_key)[:12]
    assert f"migration state: {state}" in deployed.up_output
    if first:  # a later `up` of the same code keeps the release's first record
        releases = json.loads(deployed.stack.ck("releases", "--json").stdout)
        assert next(r for r in releases if r["current"])["migration"] == state


def check_no_value_leaks(deployed: Deployed, tmp: Path) -> None:
    stack = deployed.stack
    containers = deployed.containers()
    services = {service for service, _ in containers.values()}
    assert {"db", "app"} <= services and (deployed.swarm or {"files", "migrate"} <= services)
    # docker inspect of every container of the stack (the exited `files` and `migrate` included).
    for service, container in containers.values():
        inspect = subprocess.run(["docker", "inspect", container.id], capture_output=True, timeout=60, check=True)
        assert deployed.leaked(inspect.stdout) == [], service
        env = json.loads(inspect.stdout)[0]["Config"]["Env"] or []
        assert not [e for e in env if e.split("=", 1)[0] in ("SECRET_KEY", "DATABASE_URL", "POSTGRES_PASSWORD")]
        logs = subprocess.run(["docker", "logs", container.id], capture_output=True, timeout=60, check=True)
        assert deployed.leaked(logs.stdout + logs.stderr) == [], f"{service} logs"
    if deployed.swarm:  # and every service's spec (Swarm keeps the secrets' values to itself: no API returns them)
        label = f"label=com.docker.stack.namespace={stack.name}"
        ids = subprocess.run(
            ["docker", "service", "ls", "-q", "--filter", label], capture_output=True, text=True, timeout=60
        )
        assert ids.stdout.split()
        for service_id in ids.stdout.split():
            spec = subprocess.run(
                ["docker", "service", "inspect", service_id], capture_output=True, timeout=60, check=True
            )
            assert deployed.leaked(spec.stdout) == [], service_id
    # Every rendered file.
    rendered = [p for p in (stack.dir / ".composekit").rglob("*") if p.is_file()]
    assert rendered
    for path in rendered:
        assert deployed.leaked(path.read_bytes()) == [], path
    # composekit's own output: `up`, `config` and `logs` (`docker compose logs`, or the services' in mode: swarm).
    assert deployed.leaked(deployed.up_output.encode()) == []
    shown = stack.ck("logs")
    assert "migrate: connected as" in shown.stdout  # the migration's own line: the logs were read
    assert deployed.leaked((shown.stdout + shown.stderr).encode()) == []
    assert deployed.leaked(stack.ck("config").stdout.encode()) == []
    # Every file of every layer of the app image (and its config and history).
    archive = tmp / "app-image.tar"
    subprocess.run(["docker", "save", "-o", str(archive), deployed.app().image], check=True, timeout=300)
    scanned = 0
    with tarfile.open(archive) as outer:
        for name, data in _files_of(outer):
            assert deployed.leaked(data) == [], name
            scanned += 1
    assert scanned > 1000  # the layers were opened: a Python base image holds thousands of files


def _files_of(archive: tarfile.TarFile, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """Every regular file of ``archive``, descending into the layer archives it holds."""
    for member in archive:
        if not member.isfile():
            continue
        raw: IO[bytes] | None = archive.extractfile(member)
        assert raw is not None
        name = prefix + member.name
        is_tar = tarfile.is_tarfile(raw)
        raw.seek(0)
        if not is_tar:
            yield name, raw.read()
            continue
        with tarfile.open(fileobj=raw, mode="r:*") as nested:
            yield from _files_of(nested, name + "!")


def test_database_url_and_app_secrets_are_read_by_the_app_and_the_migration(local: Deployed) -> None:
    check_values_are_read(local)


def test_database_url_and_app_secrets_leak_nowhere(local: Deployed, tmp_path: Path) -> None:
    check_no_value_leaks(local, tmp_path)


def test_database_url_a_rotated_secret_reaches_the_app_at_the_next_up(local: Deployed, tmp_path: Path) -> None:
    """Same code, new SECRET_KEY: the app's config hash follows the values' version, so `up` switches to a new
    container, which reads the new value (the migration reads it anyway: it runs at every `up`)."""
    (local.stack.dir / "secrets" / "secret_key").write_text(secrets.token_urlsafe(32) + "\n")
    result = local.stack.ck("up", "--no-smoke")
    assert "nothing recreated" not in result.stderr, result.stderr
    rotated = Deployed(local.stack, local.variables, result.stdout + result.stderr)
    assert rotated.secret_key != local.secret_key
    check_values_are_read(rotated, first=False)
    check_no_value_leaks(rotated, tmp_path)


def test_postgres_variables_over_ssh_are_read_by_the_app_and_the_migration(remote: Deployed) -> None:
    check_values_are_read(remote)
    assert f"engine: {ALIAS}" in remote.up_output


def test_postgres_variables_over_ssh_leak_nowhere(remote: Deployed, tmp_path: Path) -> None:
    check_no_value_leaks(remote, tmp_path)
