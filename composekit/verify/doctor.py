"""`composekit doctor`: preflight on the machine that will run the stack, before it breaks a deploy.

Each check is ok / warn / fail with a fix: the config, the Docker engine, Compose v2, the Traefik image (in
mode: swarm against the engine's API), the host ports, the domain's DNS records, acme.json, the ACME email, disk
space, and the engine's own settings for restarts and logs (live-restore, userland-proxy, log rotation).
A check that needs something an earlier check found missing (no config, no engine) is left out.
This module runs them in order and assembles the report; the checks live in engine_doctor.py (the engine),
host_doctor.py (the machine) and swarm_doctor.py (the Swarm).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..config import CONFIG_FILENAME, Config, load_config
from ..config.project import load_project
from ..engine.docker import ContainerInfo, Docker
from ..engine.ports import ServerPython, port_is_free
from ..engine.settings import LocalDaemon, local_daemon_for, read_engine_settings
from ..engine.target import Engine
from ..errors import ConfigError, DockerError
from ..render.edge import EDGE_PROJECT
from .checks import CheckResult, Report
from .engine_doctor import check_compose, check_engine_settings, check_traefik_api, check_traefik_image
from .host_doctor import (
    ServerChecks,
    check_acme_file,
    check_disk,
    check_dns,
    check_email,
    check_ports,
    is_local_address,
)
from .http import resolve
from .swarm_doctor import SwarmFacts, swarm_checks

__all__ = ["DoctorOptions", "EngineProbe", "run_doctor"]

ACME_VOLUME = "acme"


class EngineProbe(Protocol):
    """What doctor asks the Docker engine."""

    def engine_version(self) -> str: ...

    def compose_version(self) -> str: ...

    def api_versions(self) -> tuple[str, str]: ...

    def root_dir(self) -> str: ...

    def engine_info(self) -> dict[str, Any]: ...

    def volume_mountpoint(self, name: str) -> str | None: ...

    def image_exists(self, image: str) -> bool: ...

    def containers(self) -> list[ContainerInfo]: ...


@dataclass(frozen=True)
class DoctorOptions:
    config_files: tuple[Path, ...] = ()
    expect_ips: tuple[str, ...] = ()


def _load(files: tuple[Path, ...]) -> tuple[Config | None, CheckResult]:
    source = " + ".join(str(f) for f in files)
    try:
        project = load_project(files)
        return project.config, CheckResult.ok("config", f"{source} is valid")
    except ConfigError as exc:
        failed = CheckResult.fail(
            "config",
            "; ".join(exc.problems),
            "correct the keys named; `composekit config` prints the merged configuration",
        )
    try:
        return load_config(*files), failed
    except ConfigError:
        return None, failed


def _swarm_traefik(task: str) -> ContainerInfo:
    return ContainerInfo(task, task, "traefik", "running", None, None, 0, None, None, None, "")


def _docker_failure(name: str, exc: DockerError) -> CheckResult:
    said = exc.stderr.splitlines()[-1] if exc.stderr else ""
    return CheckResult.fail(name, f"{exc.summary}" + (f": {said}" if said else ""), exc.hint)


def _unknown_port(why: str) -> Callable[[int], bool]:
    def fail(port: int) -> bool:
        raise OSError(0, why)

    return fail


def run_doctor(
    opts: DoctorOptions,
    *,
    probe: Callable[[str], EngineProbe] = lambda project: Docker(project, []),
    resolver: Callable[[str], list[str]] = resolve,
    is_local: Callable[[str], bool] = is_local_address,
    port_free: Callable[[int], bool] = port_is_free,
    disk_usage: Callable[[str], tuple[int, int, int]] = shutil.disk_usage,
    local_daemon: Callable[[Mapping[str, Any]], LocalDaemon | None] = local_daemon_for,
    server: Engine | None = None,
    server_python: ServerPython | None = None,
    swarm_facts: Callable[[Config], SwarmFacts] | None = None,
) -> Report:
    files = tuple(Path(os.path.abspath(f)) for f in (opts.config_files or (Path(CONFIG_FILENAME),)))
    config, config_check = _load(files)
    results = [config_check]
    engine = probe(config.name if config else "composekit")
    engine_up = True
    try:
        results.append(CheckResult.ok("docker engine", f"Docker Engine {engine.engine_version()} reachable"))
    except DockerError as exc:
        engine_up = False
        results.append(_docker_failure("docker engine", exc))
    try:
        results.append(check_compose(engine.compose_version()))
    except DockerError as exc:
        results.append(_docker_failure("compose", exc))

    containers: list[ContainerInfo] | None = None
    if engine_up:
        # Only Swarm mode's Traefik talks to the engine's API (its Swarm provider); in Compose mode it reads files.
        swarm = config is not None and config.mode == "swarm"
        name = "traefik / engine api" if swarm else "traefik image"
        try:
            image = config.images.traefik if config else "traefik:v3.7"
            if swarm:
                api, min_api = engine.api_versions()
                results.append(check_traefik_api(image, api, min_api, engine.image_exists(image)))
            else:
                results.append(check_traefik_image(image, engine.image_exists(image)))
            containers = engine.containers() if config else None
        except DockerError as exc:
            results.append(_docker_failure(name, exc))
    facts: SwarmFacts | None = None
    if config is not None and config.mode == "swarm" and engine_up and swarm_facts is not None:
        # Swarm's own checks; Traefik is a Swarm task, not a Compose container, when it holds the ports.
        facts = swarm_facts(config)
        results.extend(swarm_checks(facts, config.name))
        containers = [_swarm_traefik(facts.traefik)] if facts.traefik else []
    remote: ServerChecks | None = None
    if server is not None and server.is_remote and server_python is not None and engine_up:
        # The server is not this machine: ports, disk and acme.json are read there, and DNS must point at it.
        remote = ServerChecks(server_python, config.images.python if config else "python:3.13-slim", server.address)
        disk_usage = remote.disk_usage
        # A server this machine cannot resolve (reached through a jump host) has no address to expect here.
        opts = DoctorOptions(opts.config_files, opts.expect_ips or (() if server.unreachable else (server.address,)))
    if config is not None:
        if remote is not None:
            try:
                port_free = remote.port_free((config.ports.http, config.ports.https))
            except DockerError as exc:
                port_free = _unknown_port(_docker_failure("ports", exc).detail)
        edge: list[ContainerInfo] | None = None
        if engine_up and config.mode == "compose":
            try:
                edge = probe(EDGE_PROJECT).containers()
            except DockerError as exc:
                results.append(_docker_failure("shared edge", exc))
        results.extend(check_ports(config, containers, port_free, edge))
        if remote is not None and not opts.expect_ips:
            results.append(
                CheckResult.warn(
                    "dns",
                    f"not checked: {server.unreachable if server else 'the server is not this machine'}, so its "
                    "public IP is not known here",
                    f"state the server's public IP with --expect-ip PUBLIC_IP: {config.domain} must point at it",
                )
            )
        else:
            results.append(check_dns(config.domain, opts.expect_ips, resolver, is_local))
        if engine_up:
            # edge: shared: the certificates are the shared edge's
            volume = f"{EDGE_PROJECT if config.edge == 'shared' else config.name}_{ACME_VOLUME}"
            try:
                if remote is not None:
                    results.append(remote.acme_file(volume, engine.volume_mountpoint(volume) is not None))
                else:
                    results.append(check_acme_file(volume, engine.volume_mountpoint(volume)))
            except DockerError as exc:
                results.append(_docker_failure("acme.json", exc))
        results.append(check_email(config))
    if engine_up:
        try:
            results.append(check_disk(engine.root_dir(), disk_usage))
        except DockerError as exc:
            results.append(_docker_failure("disk space", exc))
        try:
            info = engine.engine_info()
            results.extend(check_engine_settings(read_engine_settings(info, local_daemon(info))))
        except DockerError as exc:
            results.append(_docker_failure("engine settings", exc))
    where = server.describe() if server is not None and server.is_remote else socket.gethostname()
    subject = f"{config.name} ({config.domain}) on {where}" if config else where
    return Report("doctor", subject, tuple(results))
