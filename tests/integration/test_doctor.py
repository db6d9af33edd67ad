"""`composekit doctor` on this machine, with the real engine: each failure it must catch, made for real."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from python_on_whales import DockerClient

from .conftest import Stack, TestEnv

# edge: its port checks blame any taken port on the shared edge's Traefik while one runs (test_edge.py's), so it
# takes its turn with the edge modules (the edge lock, lanes.py)
pytestmark = [pytest.mark.integration, pytest.mark.edge]

APP = Path(__file__).parent / "apps" / "smoke-app"


def make_project(tmp_path: Path, testenv: TestEnv, **overrides: Any) -> Path:
    """A copy of the test app with a local.yaml overlay; nothing is deployed."""
    target = tmp_path / "project"
    shutil.copytree(APP, target)
    (target / "local.yaml").write_text(yaml.safe_dump(testenv.overlay(**overrides)))
    return target


def doctor(
    directory: Path, *args: str, env: dict[str, str] | None = None, hosts: Path | None = None
) -> tuple[int, dict[str, dict[str, str]]]:
    cmd = [
        sys.executable,
        "-m",
        "composekit.cli",
        "-c",
        "composekit.yaml",
        "-c",
        "local.yaml",
        "doctor",
        "--json",
        *args,
    ]
    if hosts is not None:
        # A private mount namespace where /etc/hosts is ours: real name resolution, nothing else changed.
        cmd = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts),
            *cmd,
        ]
    result = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode in (0, 1), f"doctor crashed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_engine_compose_and_traefik_image_are_reported(tmp_path: Path, testenv: TestEnv) -> None:
    _code, checks = doctor(make_project(tmp_path, testenv, ports={"http": free_port(), "https": free_port()}))
    docker = DockerClient()
    version = docker.version()
    assert version.server is not None
    assert checks["docker engine"] == {
        "name": "docker engine",
        "status": "ok",
        "detail": f"Docker Engine {version.server.version} reachable",
        "fix": "",
    }
    assert checks["compose"]["status"] == "ok" and "v2." in checks["compose"]["detail"]
    # Compose mode: Traefik reads files, so doctor checks its image, not what the engine's API serves.
    assert "traefik / engine api" not in checks
    assert checks["traefik image"] == {
        "name": "traefik image",
        "status": "ok",
        "detail": f"image {testenv.traefik_image} (present on this machine), Traefik 3.7",
        "fix": "",
    }
    assert checks["config"]["status"] == "ok"
    assert checks["acme email"]["status"] == "ok"
    assert checks["disk space"]["status"] in ("ok", "warn")


def test_taken_port(tmp_path: Path, testenv: TestEnv, taken_port: int) -> None:
    https = free_port()
    code, checks = doctor(make_project(tmp_path, testenv, ports={"http": taken_port, "https": https}))
    assert code == 1
    assert checks[f"port {taken_port}"]["status"] == "fail"
    assert checks[f"port {taken_port}"]["detail"] == "in use by another process (ports/http); Traefik cannot publish it"
    assert f"ss -ltnp 'sport = :{taken_port}'" in checks[f"port {taken_port}"]["fix"]
    assert checks[f"port {https}"] == {
        "name": f"port {https}",
        "status": "ok",
        "detail": "free (ports/https)",
        "fix": "",
    }


def test_missing_compose_plugin(tmp_path: Path, testenv: TestEnv) -> None:
    """The Compose plugin lives in ~/.docker/cli-plugins: a HOME without it is a machine without Compose."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    env["HOME"] = str(home)
    code, checks = doctor(make_project(tmp_path, testenv, ports={"http": free_port(), "https": free_port()}), env=env)
    assert code == 1
    compose = checks["compose"]
    assert compose["status"] == "fail"
    assert compose["detail"].startswith("Docker Compose v2 is not available")
    assert "cli-plugins" in compose["fix"]
    assert checks["docker engine"]["status"] == "ok"


def test_domain_that_does_not_resolve(tmp_path: Path, testenv: TestEnv) -> None:
    project = make_project(
        tmp_path, testenv, domain="nowhere.composekit.test", ports={"http": free_port(), "https": free_port()}
    )
    code, checks = doctor(project)
    assert code == 1
    dns = checks["dns"]
    assert dns["status"] == "fail"
    assert dns["detail"].startswith("nowhere.composekit.test does not resolve: ")
    assert dns["fix"].startswith("create an A record for nowhere.composekit.test pointing at this server's public IP")


def test_domain_that_resolves_elsewhere(tmp_path: Path, testenv: TestEnv) -> None:
    domain, elsewhere = "elsewhere.composekit.test", "198.51.100.7"  # TEST-NET-2: never this machine
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + f"\n{elsewhere} {domain}\n")
    project = make_project(tmp_path, testenv, domain=domain, ports={"http": free_port(), "https": free_port()})
    code, checks = doctor(project, hosts=hosts)
    assert code == 1
    assert checks["dns"]["status"] == "fail"
    assert "is not an address of this machine" in checks["dns"]["detail"]
    assert "--expect-ip PUBLIC_IP" in checks["dns"]["fix"]

    code, checks = doctor(project, "--expect-ip", "198.51.100.8", hosts=hosts)
    assert checks["dns"]["status"] == "fail"
    assert checks["dns"]["detail"].endswith("is not the expected 198.51.100.8")

    code, checks = doctor(project, "--expect-ip", elsewhere, hosts=hosts)
    assert checks["dns"]["status"] == "ok"
    assert checks["dns"]["detail"].endswith("as expected")


# acme.json in a running stack's volume ---------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(make_stack: Any, testenv: TestEnv) -> Stack:
    stack: Stack = make_stack(APP, "doctor-acme", smoke={"resolve": "127.0.0.1", "ca_file": str(testenv.roots)})
    stack.ck("up")  # its smoke passing means Traefik has stored the certificate in acme.json
    return stack


def stack_doctor(stack: Stack) -> tuple[int, dict[str, dict[str, str]]]:
    return doctor(stack.dir)


def test_ports_held_by_the_stacks_own_traefik(deployed: Stack) -> None:
    _code, checks = stack_doctor(deployed)
    traefik = deployed.containers()["traefik"].name
    lane = deployed.env.lane  # the ports this lane's stacks publish (lane 0: 80/443)
    assert checks[f"port {lane.http_port}"]["detail"] == f"held by this stack's Traefik ({traefik})"
    assert checks[f"port {lane.https_port}"]["status"] == "ok"


def test_acme_json_with_wrong_permissions(deployed: Stack) -> None:
    mountpoint = Path(DockerClient().volume.inspect(f"{deployed.name}_acme").mountpoint)
    acme = mountpoint / "acme.json"
    _code, checks = stack_doctor(deployed)
    assert checks["acme.json"] == {
        "name": "acme.json",
        "status": "ok",
        "detail": f"{acme}: mode 600, 1 certificate(s) stored",
        "fix": "",
    }
    os.chmod(acme, 0o644)
    try:
        code, checks = stack_doctor(deployed)
    finally:
        os.chmod(acme, 0o600)
    assert code == 1
    assert checks["acme.json"] == {
        "name": "acme.json",
        "status": "fail",
        "detail": f"{acme} has mode 644: Traefik refuses it and serves its default certificate",
        "fix": f"chmod 600 {acme}",
    }
