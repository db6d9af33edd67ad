"""Doctor's checks of the machine that runs the stack: the host ports, the domain's DNS records, acme.json, the
ACME email and disk space. On a remote engine (ServerChecks) ports, disk and acme.json are read on the server
through throwaway containers, since this machine is not the one that serves.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..engine.docker import ContainerInfo
from ..engine.ports import ServerPython, port_is_free, server_ports_free
from ..errors import HttpCheckError
from .checks import CheckResult
from .http import resolve

__all__ = [
    "ServerChecks",
    "check_acme_file",
    "check_disk",
    "check_dns",
    "check_email",
    "check_ports",
    "is_local_address",
]

DISK_FAIL_BYTES = 1 * 1024**3
DISK_WARN_BYTES = 5 * 1024**3


def is_local_address(address: str) -> bool:
    """True when ``address`` is assigned to this machine: a socket can bind to it."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def check_ports(
    config: Config,
    containers: list[ContainerInfo] | None,
    port_free: Callable[[int], bool] = port_is_free,
    edge: list[ContainerInfo] | None = None,
) -> list[CheckResult]:
    """Each port free, or held by this stack's Traefik, or by the shared edge's (``edge``: the composekit-edge
    project's containers) when the app uses it (edge: shared); any other holder fails."""
    traefik = next((c for c in containers or [] if c.service == "traefik" and c.status == "running"), None)
    shared = next((c for c in edge or [] if c.service == "traefik" and c.status == "running"), None)
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
        elif shared is not None and config.edge == "shared":
            results.append(
                CheckResult.ok(name, f"held by the shared edge's Traefik ({shared.name}), which routes this app")
            )
        elif shared is not None:
            results.append(
                CheckResult.fail(
                    name,
                    f"held by the shared edge's Traefik ({shared.name}, project composekit-edge), and this app has "
                    "edge: own, so its own Traefik cannot publish it",
                    "set `edge: shared` in composekit.yaml to deploy behind the edge, or `composekit edge down` "
                    "once no app uses it",
                )
            )
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
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
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


# on a remote engine's machine ---------------------------------------------------------------------


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
