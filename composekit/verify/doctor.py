"""`composekit doctor`: preflight on the machine that will run the stack, before it breaks a deploy.

Each check is ok / warn / fail with a fix: the config, the Docker engine, Compose v2, the Traefik image
against the engine's API, the host ports, the domain's DNS records, acme.json, the ACME email, disk space,
and the engine's own settings for restarts and logs (live-restore, userland-proxy, log rotation).
A check that needs something an earlier check found missing (no config, no engine) is left out.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..config import CONFIG_FILENAME, Config, load_config
from ..config.project import load_project
from ..engine.docker import ContainerInfo, Docker
from ..engine.ports import ServerPython, port_is_free, server_ports_free
from ..engine.settings import SWARM_REFUSAL, EngineSettings, LocalDaemon, local_daemon_for, read_engine_settings
from ..engine.target import Engine
from ..errors import ConfigError, DockerError, HttpCheckError
from .checks import CheckResult, Report
from .http import resolve
from .swarm_doctor import SwarmFacts, swarm_checks

__all__ = [
    "DoctorOptions",
    "EngineProbe",
    "check_acme_file",
    "check_disk",
    "check_dns",
    "check_engine_settings",
    "check_traefik_api",
    "check_traefik_image",
    "is_local_address",
    "run_doctor",
    "traefik_version",
]

# Traefik's Docker provider asked for API 1.24 until 3.6.1, which negotiates the version; Docker Engine 29
# refuses clients older than its minimum API version (1.44), so an older Traefik never sees a container.
TRAEFIK_LEGACY_API = (1, 24)
TRAEFIK_NEGOTIATES = (3, 6, 1)
DISK_FAIL_BYTES = 1 * 1024**3
DISK_WARN_BYTES = 5 * 1024**3
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


# helpers --------------------------------------------------------------------------------------------


# engine settings (read by engine/settings.py, judged here) ----------------------------------------

CONFIGURE = "`composekit engine configure`"


def check_engine_settings(s: EngineSettings) -> list[CheckResult]:
    """live-restore, userland-proxy and default log rotation, each with its fix and why."""
    results = []
    name = "engine live-restore"
    if s.swarm:
        results.append(
            CheckResult.ok(
                name,
                f"off, as it must be on a Swarm node (state {s.swarm_state}): {SWARM_REFUSAL}",
            )
            if not s.live_restore
            else CheckResult.warn(
                name,
                f"on, on a Swarm node (state {s.swarm_state}): {SWARM_REFUSAL}",
                'set "live-restore": false in daemon.json on Swarm nodes',
            )
        )
    elif s.live_restore:
        results.append(CheckResult.ok(name, "on: containers keep running while dockerd restarts"))
    else:
        results.append(
            CheckResult.warn(
                name,
                "off: every container stops when dockerd stops (each engine upgrade or restart)",
                f'set "live-restore": true in daemon.json ({CONFIGURE}), then `systemctl reload docker` '
                "(applied without a restart): containers then keep running while dockerd restarts",
            )
        )

    name = "engine userland-proxy"
    if s.userland_proxy is None:
        results.append(
            CheckResult.warn(
                name,
                f"unknown ({s.userland_proxy_source})",
                f"on the server: `ps -C docker-proxy` lists the userland proxies while a port is published; "
                f'{CONFIGURE} there sets "userland-proxy": false',
            )
        )
    elif s.userland_proxy:
        results.append(
            CheckResult.warn(
                name,
                f"on ({s.userland_proxy_source}): published ports go through docker-proxy processes that die "
                "with dockerd, so requests fail during a daemon restart even with live-restore",
                f'set "userland-proxy": false in daemon.json ({CONFIGURE}) and restart dockerd: the kernel forwards '
                "published ports instead; changing it restarts the containers once",
            )
        )
    else:
        results.append(CheckResult.ok(name, f"off ({s.userland_proxy_source}): the kernel forwards published ports"))

    name = "engine log rotation"
    if s.log_driver != "json-file":
        results.append(
            CheckResult.ok(name, f"log-driver {s.log_driver}: rotated or sent off the engine's disk by the driver")
        )
    elif s.log_opts is None:
        results.append(
            CheckResult.warn(
                name,
                f"log-driver json-file, log-opts unknown ({s.log_opts_source})",
                'on the server, "log-opts": {"max-size": "10m", "max-file": "3"} in daemon.json bounds each '
                f"container's log ({CONFIGURE} sets it)",
            )
        )
    elif "max-size" in s.log_opts:
        results.append(
            CheckResult.ok(
                name,
                f"log-driver json-file, max-size {s.log_opts['max-size']}, max-file "
                f"{s.log_opts.get('max-file', '1')} ({s.log_opts_source})",
            )
        )
    else:
        results.append(
            CheckResult.warn(
                name,
                f"log-driver json-file without max-size ({s.log_opts_source}): container logs grow until the "
                "disk is full",
                f'set "log-opts": {{"max-size": "10m", "max-file": "3"}} in daemon.json ({CONFIGURE}) and restart '
                "dockerd: it applies to containers created afterwards",
            )
        )
    return results


def is_local_address(address: str) -> bool:
    """True when ``address`` is assigned to this machine: a socket can bind to it."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def _version_tuple(text: str) -> tuple[int, ...]:
    """The first version number in ``text``: "Docker Compose version v2.40.3" -> (2, 40, 3)."""
    match = re.search(r"(?<![\w.])v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def traefik_version(image: str) -> tuple[int, ...]:
    """The Traefik version an image reference names by its tag ("traefik:v3.7" -> (3, 7)); () if it does not."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    return _version_tuple(tag) if name else ()


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


# checks ---------------------------------------------------------------------------------------------


TRAEFIK_V3_FIX = 'composekit renders Traefik v3 configuration: set images/traefik to "traefik:v3.7"'


def _traefik_seen(image: str, present: bool | None) -> tuple[tuple[int, ...], str]:
    version = traefik_version(image)
    shown = ".".join(map(str, version)) if version else "unknown (tag has no version)"
    where = {
        True: "present on this machine",
        False: "not on this machine yet: `composekit up` pulls it",
        None: "presence unknown",
    }[present]
    return version, f"image {image} ({where}), Traefik {shown}"


def check_traefik_image(image: str, present: bool | None) -> CheckResult:
    """Compose mode: Traefik reads its routes from files composekit writes and never calls the engine's API, so
    only the image's major version matters."""
    name = "traefik image"
    version, seen = _traefik_seen(image, present)
    if version and version[0] < 3:
        return CheckResult.fail(name, seen, TRAEFIK_V3_FIX)
    return CheckResult.ok(name, seen)


def check_traefik_api(image: str, api: str, min_api: str, present: bool | None) -> CheckResult:
    """Swarm mode: the engine's API (through composekit's read-only proxy) must serve Traefik's Swarm provider."""
    name = "traefik / engine api"
    version, image_seen = _traefik_seen(image, present)
    seen = f"engine API {api} (minimum {min_api}); {image_seen}"
    engine_min = _version_tuple(min_api)
    if _version_tuple(api) < TRAEFIK_LEGACY_API:
        return CheckResult.fail(
            name, seen, "Traefik v3 needs Docker API 1.24 or newer: upgrade the Docker engine (20.10 or later)"
        )
    if version and version[0] < 3:
        return CheckResult.fail(name, seen, TRAEFIK_V3_FIX)
    if engine_min > TRAEFIK_LEGACY_API:
        # A tag without a patch version ("v3.6") follows that line's latest release.
        if version and version + (999,) * (3 - len(version)) < TRAEFIK_NEGOTIATES:
            return CheckResult.fail(
                name,
                f"{seen}: this Traefik asks for Docker API 1.24, which the engine refuses",
                'use Traefik 3.6.1 or newer (images/traefik: "traefik:v3.7"), which negotiates the API version',
            )
        if not version:
            return CheckResult.warn(
                name,
                f"{seen}: Traefik before 3.6.1 asks for Docker API 1.24, which this engine refuses",
                'pin a versioned tag of 3.6.1 or newer in images/traefik, such as "traefik:v3.7"',
            )
    return CheckResult.ok(name, seen)


def check_ports(
    config: Config, containers: list[ContainerInfo] | None, port_free: Callable[[int], bool] = port_is_free
) -> list[CheckResult]:
    traefik = next((c for c in containers or [] if c.service == "traefik" and c.status == "running"), None)
    results = []
    for key, port in (("http", config.ports.http), ("https", config.ports.https)):
        name = f"port {port}"
        try:
            free = port_free(port)
        except OSError as exc:
            results.append(
                CheckResult.fail(
                    name,
                    f"cannot test port {port}: {exc.strerror}",
                    "run doctor as root on the server that will run the stack",
                )
            )
            continue
        if free:
            results.append(CheckResult.ok(name, f"free (ports/{key})"))
        elif traefik is not None:
            results.append(CheckResult.ok(name, f"held by this stack's Traefik ({traefik.name})"))
        else:
            results.append(
                CheckResult.fail(
                    name,
                    f"in use by another process (ports/{key}); Traefik cannot publish it",
                    f"stop that process (`ss -ltnp 'sport = :{port}'` shows it) "
                    f"or choose another port under ports/{key}",
                )
            )
    return results


def check_dns(
    domain: str,
    expect_ips: Sequence[str],
    resolver: Callable[[str], list[str]] = resolve,
    is_local: Callable[[str], bool] = is_local_address,
) -> CheckResult:
    """The domain's A/AAAA records must point at this machine (or at the IPs stated with --expect-ip)."""
    name = "dns"
    try:
        records = resolver(domain)
    except HttpCheckError as exc:
        return CheckResult.fail(
            name,
            str(exc),
            f"create an A record for {domain} pointing at this server's public IP (and AAAA only if the server "
            "has IPv6): the ACME HTTP-01 challenge reaches the server through it",
        )
    seen = f"{domain} -> {', '.join(records)}"
    if expect_ips:
        expected = {str(ipaddress.ip_address(ip)) for ip in expect_ips}
        wrong = [r for r in records if r not in expected]
        missing = sorted(expected - set(records))
        if wrong:
            return CheckResult.fail(
                name,
                f"{seen}; {', '.join(wrong)} is not the expected {', '.join(sorted(expected))}",
                f"point the records of {domain} at {', '.join(sorted(expected))} only: the CA validates through "
                "every record (Let's Encrypt prefers AAAA), so a stale one fails the certificate",
            )
        note = f" (not published: {', '.join(missing)})" if missing else ""
        return CheckResult.ok(name, f"{seen}, as expected{note}")
    foreign = [r for r in records if not is_local(r)]
    if foreign:
        return CheckResult.fail(
            name,
            f"{seen}; {', '.join(foreign)} is not an address of this machine",
            f"point {domain} at this server; if the server is behind NAT (its public IP is on no interface), "
            "state it with --expect-ip PUBLIC_IP",
        )
    private = [r for r in records if not ipaddress.ip_address(r).is_global]
    if private:
        return CheckResult.warn(
            name,
            f"{seen}: {', '.join(private)} is local to this machine but not a public address",
            "a public CA cannot reach a loopback or private address: publish the server's public IP "
            "(fine for a private CA such as Pebble in tests)",
        )
    return CheckResult.ok(name, f"{seen}: this machine")


def check_acme_file(volume: str, mountpoint: str | None) -> CheckResult:
    """acme.json, when it exists, must be mode 600 (Traefik refuses it otherwise)."""
    name = "acme.json"
    if mountpoint is None:
        return CheckResult.ok(name, f"volume {volume} does not exist yet: the first `composekit up` creates it")
    directory = Path(mountpoint)
    path = directory / "acme.json"
    try:
        if not directory.is_dir():
            raise PermissionError
        info = path.stat()
    except FileNotFoundError:
        return CheckResult.ok(name, f"not created yet in {directory}: Traefik writes it with the first certificate")
    except PermissionError:
        return CheckResult.warn(
            name,
            f"cannot look into {directory} (volume {volume})",
            "run doctor as root on the machine whose Docker engine runs the stack",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o600:
        return CheckResult.fail(
            name,
            f"{path} has mode {mode:o}: Traefik refuses it and serves its default certificate",
            f"chmod 600 {path}",
        )
    try:
        data = json.loads(path.read_text() or "{}")
        count = sum(len(v.get("Certificates") or []) for v in data.values() if isinstance(v, dict))
    except (OSError, ValueError, AttributeError):
        return CheckResult.warn(
            name,
            f"{path} (mode 600) is not valid JSON",
            "stop the stack, move the file aside and start it: Traefik requests the certificates again "
            "(mind the CA's rate limits)",
        )
    return CheckResult.ok(name, f"{path}: mode 600, {count} certificate(s) stored")


def check_disk(root: str, usage: Callable[[str], tuple[int, int, int]] = shutil.disk_usage) -> CheckResult:
    name = "disk space"
    try:
        _total, _used, free = usage(root)
    except OSError as exc:
        return CheckResult.warn(
            name,
            f"cannot measure {root}: {exc.strerror}",
            "run doctor on the machine whose Docker engine runs the stack",
        )
    seen = f"{_gib(free)} free for Docker ({root})"
    fix = "free space: `docker system prune` removes stopped containers, unused images and build cache"
    if free < DISK_FAIL_BYTES:
        return CheckResult.fail(name, f"{seen}: builds and pulls will fail", fix)
    if free < DISK_WARN_BYTES:
        return CheckResult.warn(name, f"{seen}: little room for image builds and logs", fix)
    return CheckResult.ok(name, seen)


def check_email(config: Config) -> CheckResult:
    if config.acme.email:
        return CheckResult.ok("acme email", f"acme/email: {config.acme.email}")
    return CheckResult.warn(
        "acme email",
        "acme/email is not set: the CA cannot contact you about the account or its certificates",
        "set acme/email in composekit.yaml",
    )


# the run --------------------------------------------------------------------------------------------


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


_SERVER_DISK = "import shutil; print(*shutil.disk_usage('/docker-root'))"
_SERVER_ACME = (
    "import json, os, stat\n"
    "path = '/acme/acme.json'\n"
    "if not os.path.exists(path):\n"
    "    print('missing')\n"
    "else:\n"
    "    mode = stat.S_IMODE(os.stat(path).st_mode)\n"
    "    try:\n"
    "        data = json.load(open(path)) or {}\n"
    "        n = sum(len(v.get('Certificates') or []) for v in data.values() if isinstance(v, dict))\n"
    "    except (ValueError, AttributeError):\n"
    "        n = -1\n"
    "    print(oct(mode)[2:], n)\n"
)


@dataclass(frozen=True)
class ServerChecks:
    """Ports, disk and acme.json checked on a remote engine's machine, through throwaway containers."""

    run: ServerPython
    image: str
    address: str

    def port_free(self, ports: tuple[int, ...]) -> Callable[[int], bool]:
        return server_ports_free(self.run, self.image, ports)

    def disk_usage(self, root: str) -> tuple[int, int, int]:
        total, used, free = self.run(self.image, _SERVER_DISK, [], {root: "/docker-root"}, "none").split()
        return int(total), int(used), int(free)

    def acme_file(self, volume: str, exists: bool) -> CheckResult:
        name = "acme.json"
        if not exists:
            return CheckResult.ok(name, f"volume {volume} does not exist yet: the first `composekit up` creates it")
        answer = self.run(self.image, _SERVER_ACME, [], {volume: "/acme"}, "none").split()
        if answer == ["missing"]:
            return CheckResult.ok(
                name, f"not created yet in volume {volume}: Traefik writes it with the first certificate"
            )
        mode, count = answer[0], int(answer[1])
        if mode != "600":
            return CheckResult.fail(
                name,
                f"acme.json in volume {volume} has mode {mode}: Traefik refuses it and serves its default certificate",
                f"on the server: chmod 600 $(docker volume inspect -f '{{{{.Mountpoint}}}}' {volume})/acme.json",
            )
        if count < 0:
            return CheckResult.warn(
                name,
                f"acme.json in volume {volume} (mode 600) is not valid JSON",
                "stop the stack, move the file aside and start it: Traefik requests the "
                "certificates again (mind the CA's rate limits)",
            )
        return CheckResult.ok(name, f"acme.json in volume {volume} on the server: mode 600, {count} certificate(s)")


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
        version = engine.compose_version()
        if _version_tuple(version)[:1] >= (2,):
            results.append(CheckResult.ok("compose", version))
        else:
            results.append(
                CheckResult.fail(
                    "compose", f"{version}: not v2", "install Compose v2 as a Docker CLI plugin (docker-compose-plugin)"
                )
            )
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
        results.extend(check_ports(config, containers, port_free))
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
            volume = f"{config.name}_{ACME_VOLUME}"
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
