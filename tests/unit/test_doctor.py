"""`composekit doctor` without a daemon: a fake engine, fake DNS and ports, real files for acme.json."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from composekit.config import Config
from composekit.engine.docker import COMPOSE_HINT, ENGINE_HINT, ContainerInfo
from composekit.engine.settings import LocalDaemon
from composekit.engine.swarm import swarm_state
from composekit.errors import DockerError, HttpCheckError
from composekit.verify.checks import Report, Status
from composekit.verify.doctor import DoctorOptions, run_doctor
from composekit.verify.engine_doctor import check_traefik_api, traefik_version
from composekit.verify.host_doctor import check_acme_file, check_disk, check_dns, is_local_address
from composekit.verify.swarm_doctor import SwarmFacts

CONFIG = """\
name: shop
domain: shop.example.com
acme:
  email: ops@example.com
app:
  module: app.main:app
"""
PUBLIC_IP = "51.15.0.7"  # a global address: documentation ranges (203.0.113.0/24) are not


@dataclass
class FakeEngine:
    engine: str | DockerError = "27.3.1"
    compose: str | DockerError = "Docker Compose version v2.40.3"
    api: tuple[str, str] = ("1.47", "1.24")
    root: str = "/var/lib/docker"
    volumes: dict[str, str] = field(default_factory=dict)
    images: set[str] = field(default_factory=lambda: {"traefik:v3.7"})
    running: list[ContainerInfo] = field(default_factory=list)
    info: dict[str, Any] | DockerError = field(
        default_factory=lambda: {
            "Name": "server",
            "LiveRestoreEnabled": True,
            "LoggingDriver": "local",
            "Swarm": {"LocalNodeState": "inactive"},
        }
    )

    def engine_version(self) -> str:
        if isinstance(self.engine, DockerError):
            raise self.engine
        return self.engine

    def compose_version(self) -> str:
        if isinstance(self.compose, DockerError):
            raise self.compose
        return self.compose

    def api_versions(self) -> tuple[str, str]:
        return self.api

    def root_dir(self) -> str:
        return self.root

    def engine_info(self) -> dict[str, Any]:
        if isinstance(self.info, DockerError):
            raise self.info
        return self.info

    def volume_mountpoint(self, name: str) -> str | None:
        return self.volumes.get(name)

    def image_exists(self, image: str) -> bool:
        return image in self.images

    def containers(self) -> list[ContainerInfo]:
        return self.running


def traefik_container() -> ContainerInfo:
    return ContainerInfo(
        "abc", "shop-traefik-1", "traefik", "running", "healthy", None, 0, None, None, 1, "traefik:v3.7"
    )


def project(tmp_path: Path, config: str = CONFIG) -> Path:
    (tmp_path / "composekit.yaml").write_text(config)
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    return tmp_path / "composekit.yaml"


def doctor(
    tmp_path: Path,
    engine: FakeEngine | None = None,
    *,
    records: list[str] | None = None,
    taken: frozenset[int] | set[int] = frozenset(),
    expect: tuple[str, ...] = (),
    free_bytes: int = 50 * 1024**3,
    config: str = CONFIG,
    listening: frozenset[int] | set[int] | None = None,
    daemon: LocalDaemon | None = None,
    swarm_facts: Callable[[Config], SwarmFacts] | None = None,
) -> Report:
    def resolver(domain: str) -> list[str]:
        if records is None:
            raise HttpCheckError(f"{domain} does not resolve: Name or service not known")
        return records

    return run_doctor(
        DoctorOptions((project(tmp_path, config),), expect),
        probe=lambda name: engine or FakeEngine(),
        resolver=resolver,
        is_local=lambda ip: ip in {PUBLIC_IP, "127.0.0.1"},
        port_free=lambda port: port not in taken,
        disk_usage=lambda path: (100 * 1024**3, 0, free_bytes),
        # The machine's own state (who may bind, what listens) must not leak into these tests.
        swarm_facts=swarm_facts,
        local_daemon=lambda info: (
            daemon or LocalDaemon(1, ("dockerd", "--userland-proxy=false"), "/etc/docker/daemon.json", None)
        ),
    )


def by_name(report: Report) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status.value, c.detail) for c in report.checks}


def test_healthy_machine(tmp_path: Path) -> None:
    report = doctor(tmp_path, records=[PUBLIC_IP])
    assert by_name(report) == {
        "config": ("ok", f"{tmp_path / 'composekit.yaml'} is valid"),
        "docker engine": ("ok", "Docker Engine 27.3.1 reachable"),
        "compose": ("ok", "Docker Compose version v2.40.3"),
        "traefik image": ("ok", "image traefik:v3.7 (present on this machine), Traefik 3.7"),
        "port 80": ("ok", "free (ports/http)"),
        "port 443": ("ok", "free (ports/https)"),
        "dns": ("ok", f"shop.example.com -> {PUBLIC_IP}: this machine"),
        "acme.json": ("ok", "volume shop_acme does not exist yet: the first `composekit up` creates it"),
        "acme email": ("ok", "acme/email: ops@example.com"),
        "disk space": ("ok", "50.0 GiB free for Docker (/var/lib/docker)"),
        "engine live-restore": ("ok", "on: containers keep running while dockerd restarts"),
        "engine userland-proxy": (
            "ok",
            "off (dockerd (pid 1) command line: --userland-proxy=false): the kernel forwards published ports",
        ),
        "engine log rotation": ("ok", "log-driver local: rotated or sent off the engine's disk by the driver"),
    }
    assert report.passed


def test_taken_port_fails_unless_our_traefik_holds_it(tmp_path: Path) -> None:
    report = doctor(tmp_path, records=[PUBLIC_IP], taken={443})
    assert by_name(report)["port 443"] == ("fail", "in use by another process (ports/https); Traefik cannot publish it")
    assert report.checks[5].fix == (
        "stop that process (`ss -ltnp 'sport = :443'` shows it) or choose another port under ports/https"
    )
    assert not report.passed
    ours = doctor(tmp_path, FakeEngine(running=[traefik_container()]), records=[PUBLIC_IP], taken={80, 443})
    assert by_name(ours)["port 443"] == ("ok", "held by this stack's Traefik (shop-traefik-1)")


def test_run_doctor_takes_its_port_probes_from_the_caller(tmp_path: Path) -> None:
    def port_443(listening: bool) -> tuple[str, str]:
        report = run_doctor(
            DoctorOptions((project(tmp_path),)),
            probe=lambda name: FakeEngine(),
            resolver=lambda d: [PUBLIC_IP],
            is_local=lambda ip: True,
            port_free=lambda port: port != 443 or not listening,
            disk_usage=lambda p: (0, 0, 50 * 1024**3),
            local_daemon=lambda info: None,
        )
        return by_name(report)["port 443"]

    # The port probe comes from the caller: the result does not depend on who runs the suite or what listens.
    assert port_443(listening=False) == ("ok", "free (ports/https)")
    assert port_443(listening=True)[0] == "fail"


def test_engine_without_the_settings_warns_but_passes(tmp_path: Path) -> None:
    defaults = {
        "Name": "server",
        "LiveRestoreEnabled": False,
        "LoggingDriver": "json-file",
        "Swarm": {"LocalNodeState": "inactive"},
    }
    daemon = LocalDaemon(321, ("dockerd",), str(tmp_path / "daemon.json"), None, proxies=2)
    report = doctor(tmp_path, FakeEngine(info=defaults), records=[PUBLIC_IP], daemon=daemon)
    engine = {k: v for k, v in by_name(report).items() if k.startswith("engine ")}
    assert engine == {
        "engine live-restore": (
            "warn",
            "off: every container stops when dockerd stops (each engine upgrade or restart)",
        ),
        "engine userland-proxy": (
            "warn",
            "on (2 docker-proxy process(es) of dockerd (pid 321)): published ports go through docker-proxy "
            "processes that die with dockerd, so requests fail during a daemon restart even with live-restore",
        ),
        "engine log rotation": (
            "warn",
            f"log-driver json-file without max-size ({tmp_path / 'daemon.json'} of dockerd (pid 321)): "
            "container logs grow until the disk is full",
        ),
    }
    assert report.passed


def test_docker_info_failing_is_one_failed_check(tmp_path: Path) -> None:
    broken = DockerError("cannot read `docker info`", ["docker", "info"], "permission denied", ENGINE_HINT)
    report = doctor(tmp_path, FakeEngine(info=broken), records=[PUBLIC_IP])
    assert by_name(report)["engine settings"] == ("fail", "cannot read `docker info`: permission denied")


def test_engine_unreachable_leaves_out_what_needs_it(tmp_path: Path) -> None:
    down = DockerError(
        "cannot reach the Docker engine",
        ["docker", "version"],
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
        ENGINE_HINT,
    )
    report = doctor(tmp_path, FakeEngine(engine=down), records=[PUBLIC_IP])
    assert list(by_name(report)) == ["config", "docker engine", "compose", "port 80", "port 443", "dns", "acme email"]
    engine = report.checks[1]
    assert engine.detail == (
        "cannot reach the Docker engine: Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    )
    assert engine.fix == ENGINE_HINT


def test_missing_compose_plugin(tmp_path: Path) -> None:
    missing = DockerError(
        "Docker Compose v2 is not available",
        ["docker", "compose", "version"],
        "docker: 'compose' is not a docker command.",
        COMPOSE_HINT,
    )
    report = doctor(tmp_path, FakeEngine(compose=missing), records=[PUBLIC_IP])
    assert by_name(report)["compose"] == (
        "fail",
        "Docker Compose v2 is not available: docker: 'compose' is not a docker command.",
    )
    assert report.checks[2].fix == COMPOSE_HINT


def test_compose_v1_fails(tmp_path: Path) -> None:
    report = doctor(tmp_path, FakeEngine(compose="docker-compose version 1.29.2, build 5becea4c"), records=[PUBLIC_IP])
    assert by_name(report)["compose"] == ("fail", "docker-compose version 1.29.2, build 5becea4c: not v2")


def test_invalid_config_still_checks_the_engine(tmp_path: Path) -> None:
    report = doctor(tmp_path, records=[PUBLIC_IP], config="name: Shop\ndomain: shop.example.com\n")
    assert list(by_name(report)) == [
        "config",
        "docker engine",
        "compose",
        "traefik image",
        "disk space",
        "engine live-restore",
        "engine userland-proxy",
        "engine log rotation",
    ]
    source = tmp_path / "composekit.yaml"
    assert by_name(report)["config"] == (
        "fail",
        (
            f'{source}: name: expected lowercase letters, digits, "-" and "_", starting with a letter or digit, '
            f'got "Shop"; {source}: app: required key is missing'
        ),
    )


def test_missing_file_named_by_config_keeps_config_checks(tmp_path: Path) -> None:
    report = doctor(tmp_path, records=[PUBLIC_IP], config=CONFIG + "  env_file: .env\n")
    assert by_name(report)["config"][0] == "fail"
    assert "dns" in by_name(report) and "port 80" in by_name(report)


# dns ------------------------------------------------------------------------------------------------


def local(ip: str) -> bool:
    return ip in {"203.0.113.7", "2001:db8::7", "127.0.0.1"}


def nx(domain: str) -> list[str]:
    raise HttpCheckError(f"{domain} does not resolve: Name or service not known")


def test_dns_does_not_resolve() -> None:
    result = check_dns("shop.example.com", (), nx, local)
    assert (result.status, result.detail) == (
        Status.FAIL,
        "shop.example.com does not resolve: Name or service not known",
    )
    assert result.fix.startswith("create an A record for shop.example.com pointing at this server's public IP")


def test_dns_points_elsewhere() -> None:
    result = check_dns("shop.example.com", (), lambda d: ["203.0.113.7", "2001:db8::99"], local)
    assert (result.status, result.detail) == (
        Status.FAIL,
        "shop.example.com -> 203.0.113.7, 2001:db8::99; 2001:db8::99 is not an address of this machine",
    )
    assert "--expect-ip PUBLIC_IP" in result.fix


def test_dns_with_expected_ip_behind_nat() -> None:
    ok = check_dns("shop.example.com", ("198.51.100.4",), lambda d: ["198.51.100.4"], local)
    assert (ok.status, ok.detail) == (Status.OK, "shop.example.com -> 198.51.100.4, as expected")
    wrong = check_dns("shop.example.com", ("198.51.100.4",), lambda d: ["198.51.100.5"], local)
    assert (wrong.status, wrong.detail) == (
        Status.FAIL,
        "shop.example.com -> 198.51.100.5; 198.51.100.5 is not the expected 198.51.100.4",
    )


def test_dns_loopback_warns() -> None:
    result = check_dns("shop.example.com", (), lambda d: ["127.0.0.1"], local)
    assert (result.status, result.detail) == (
        Status.WARN,
        "shop.example.com -> 127.0.0.1: 127.0.0.1 is local to this machine but not a public address",
    )


def test_is_local_address() -> None:
    assert is_local_address("127.0.0.1")
    assert not is_local_address("192.0.2.123")


# acme.json ------------------------------------------------------------------------------------------


def test_acme_file_modes(tmp_path: Path) -> None:
    assert check_acme_file("shop_acme", str(tmp_path)).detail == (
        f"not created yet in {tmp_path}: Traefik writes it with the first certificate"
    )
    acme = tmp_path / "acme.json"
    acme.write_text('{"composekit": {"Account": {}, "Certificates": [{"domain": {"main": "shop.example.com"}}]}}')
    os.chmod(acme, 0o644)
    wrong = check_acme_file("shop_acme", str(tmp_path))
    assert (wrong.status, wrong.detail, wrong.fix) == (
        Status.FAIL,
        f"{acme} has mode 644: Traefik refuses it and serves its default certificate",
        f"chmod 600 {acme}",
    )
    os.chmod(acme, 0o600)
    assert check_acme_file("shop_acme", str(tmp_path)).detail == f"{acme}: mode 600, 1 certificate(s) stored"
    acme.write_text("{not json")
    assert check_acme_file("shop_acme", str(tmp_path)).status is Status.WARN


def test_acme_volume_not_visible(tmp_path: Path) -> None:
    result = check_acme_file("shop_acme", str(tmp_path / "elsewhere"))
    assert (result.status, result.detail) == (
        Status.WARN,
        f"cannot look into {tmp_path / 'elsewhere'} (volume shop_acme)",
    )


def test_acme_file_found_through_the_volume(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "acme.json").write_text("{}")
    os.chmod(volume / "acme.json", 0o640)
    report = doctor(tmp_path, FakeEngine(volumes={"shop_acme": str(volume)}), records=[PUBLIC_IP])
    assert by_name(report)["acme.json"][0] == "fail"


def test_acme_email_missing_warns(tmp_path: Path) -> None:
    report = doctor(tmp_path, records=[PUBLIC_IP], config=CONFIG.replace("acme:\n  email: ops@example.com\n", ""))
    assert by_name(report)["acme email"][0] == "warn"
    assert report.passed


# traefik, disk --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("traefik:v3.7", (3, 7)),
        ("traefik:v3.6.0", (3, 6, 0)),
        ("composekit-test/traefik:3.7", (3, 7)),
        ("registry.example.com:5000/traefik", ()),
        ("traefik", ()),
        ("traefik:latest", ()),
        ("traefik:v3.6.2@sha256:abc", (3, 6, 2)),
    ],
)
def test_traefik_version(image: str, version: tuple[int, ...]) -> None:
    assert traefik_version(image) == version


def test_old_traefik_against_engine_29() -> None:
    result = check_traefik_api("traefik:v3.6.0", "1.52", "1.44", True)
    assert (result.status, result.detail) == (
        Status.FAIL,
        "engine API 1.52 (minimum 1.44); image traefik:v3.6.0 (present on this machine), Traefik 3.6.0: "
        "this Traefik asks for Docker API 1.24, which the engine refuses",
    )
    assert check_traefik_api("traefik:v3.6", "1.52", "1.44", False).status is Status.OK
    assert check_traefik_api("traefik:v3.6.1", "1.52", "1.44", True).status is Status.OK
    assert check_traefik_api("traefik:latest", "1.52", "1.44", True).status is Status.WARN
    assert check_traefik_api("traefik:v3.0", "1.41", "1.12", True).status is Status.OK


OLD_TRAEFIK = CONFIG + "images:\n  traefik: traefik:v3.6.0\n"


def test_compose_mode_checks_the_traefik_image_not_the_engine_api(tmp_path: Path) -> None:
    """In compose mode Traefik reads files composekit writes: a Traefik that cannot speak this engine's API is fine."""
    engine = FakeEngine(api=("1.52", "1.44"), images={"traefik:v3.6.0"})
    report = by_name(doctor(tmp_path, engine, records=[PUBLIC_IP], config=OLD_TRAEFIK))
    assert "traefik / engine api" not in report
    assert report["traefik image"] == ("ok", "image traefik:v3.6.0 (present on this machine), Traefik 3.6.0")
    v2 = by_name(doctor(tmp_path, records=[PUBLIC_IP], config=CONFIG + "images:\n  traefik: traefik:v2.11\n"))
    assert v2["traefik image"] == (
        "fail",
        "image traefik:v2.11 (not on this machine yet: `composekit up` pulls it), Traefik 2.11",
    )


def test_swarm_mode_checks_that_the_engine_api_serves_traefiks_swarm_provider(tmp_path: Path) -> None:
    engine = FakeEngine(api=("1.52", "1.44"), images={"traefik:v3.6.0"})
    inactive = SwarmFacts(swarm_state({"Swarm": {"LocalNodeState": "inactive"}}))
    report = by_name(
        doctor(
            tmp_path,
            engine,
            records=[PUBLIC_IP],
            config=OLD_TRAEFIK + "mode: swarm\n",
            swarm_facts=lambda config: inactive,
        )
    )
    assert "traefik image" not in report
    assert report["traefik / engine api"] == (
        "fail",
        "engine API 1.52 (minimum 1.44); image traefik:v3.6.0 (present on this machine), Traefik 3.6.0: "
        "this Traefik asks for Docker API 1.24, which the engine refuses",
    )


def test_traefik_v2_and_ancient_engine_fail() -> None:
    assert check_traefik_api("traefik:v2.11", "1.41", "1.12", True).fix.startswith(
        "composekit renders Traefik v3 configuration"
    )
    assert check_traefik_api("traefik:v3.7", "1.23", "1.12", True).status is Status.FAIL


@pytest.mark.parametrize(("free_gib", "status"), [(50, Status.OK), (3, Status.WARN), (0.5, Status.FAIL)])
def test_disk_thresholds(free_gib: float, status: Status) -> None:
    assert check_disk("/var/lib/docker", lambda p: (0, 0, int(free_gib * 1024**3))).status is status


def test_disk_not_visible() -> None:
    def missing(path: str) -> tuple[int, int, int]:
        raise FileNotFoundError(2, "No such file or directory")

    result = check_disk("/srv/docker", missing)
    assert (result.status, result.detail) == (Status.WARN, "cannot measure /srv/docker: No such file or directory")
