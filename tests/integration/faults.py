"""Fault scenarios against a real stack, shared by tests/integration/test_faults.py (which asserts on them) and
scripts/fault_report.py (which prints their figures): a gunicorn worker killed under HTTPS load, the app
container's main process SIGKILLed from the host, Traefik restarted while the ACME CA is unreachable.

Each scenario is bounded in time and in requests, sends load only to 127.0.0.1, and undoes what it changed
on the host (the iptables rule) in a finally block. They need root (os.kill of container processes,
/proc of the host, nsenter, iptables), as the whole integration suite does.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from composekit.engine.docker import Docker
from composekit.engine.status import count_workers

from .conftest import Stack

__all__ = [
    "CaUnreachableRestart",
    "MainProcessKill",
    "WorkerKill",
    "ca_unreachable_restart",
    "host_ports_lock",
    "kill_app_main_process",
    "kill_one_worker_under_load",
]

LOCK_FILE = "/tmp/composekit-integration.lock"  # the one tests/integration/conftest.py's host_ports takes


@contextmanager
def host_ports_lock() -> Iterator[None]:
    """Ports 80/443 are shared by every stack on this machine: hold the suite's lock while using them."""
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _service(stack: Stack, name: str) -> Any:
    return stack.containers()[name]


def _children(pid: int) -> set[int]:
    """Host PIDs whose parent is ``pid``, from the host's /proc (the app's PID 1 is gunicorn's master)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid) and not fields.get("State", "").startswith("Z"):
            found.add(int(entry))
    return found


def _workers_in_container(stack: Stack, container: str) -> int:
    """The count `composekit status` shows: gunicorn's live children, read through /proc in the container."""
    return count_workers(Docker(stack.name, [stack.dir / ".composekit" / "compose.yaml"]), container)


@dataclass
class _Load:
    """Client threads sending GET requests over HTTPS to 127.0.0.1 (SNI and Host = the domain), each on its
    own keep-alive connection, until stopped, ``max_seconds`` passed or ``max_requests`` were sent."""

    stack: Stack
    threads: int
    path: str
    max_seconds: float
    max_requests: int
    sent: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        verify = ssl.create_default_context(cafile=str(self.stack.env.roots))
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(verify=verify, timeout=10) as client:
            for _ in range(self.max_requests // self.threads):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                outcome = None
                try:
                    response = client.get(
                        f"{self.stack.base_url}{self.path}",
                        headers={"Host": self.stack.domain},
                        extensions={"sni_hostname": self.stack.domain},
                    )
                    if response.status_code != 200:
                        outcome = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with self._lock:
                    self.sent += 1
                    if outcome is not None:
                        self.failed += 1
                        self.failures[outcome] += 1

    def __enter__(self) -> _Load:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for thread in self._workers:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=15)


@dataclass(frozen=True)
class WorkerKill:
    threads: int
    sent: int
    failed: int
    failures: dict[str, int]
    workers_before: int
    workers_after: int
    killed_pid: int
    new_pids: frozenset[int]
    seconds_to_replaced: float | None  # None: not replaced within the deadline


def kill_one_worker_under_load(
    stack: Stack,
    *,
    threads: int = 4,
    seconds: float = 12,
    kill_after: float = 4,
    max_requests: int = 20000,
    replace_deadline: float = 30,
) -> WorkerKill:
    """SIGKILL one gunicorn worker (from the host) while ``threads`` clients send requests."""
    app = _service(stack, "app")
    master = app.state.pid
    before = _workers_in_container(stack, app.name)
    old = _children(master)
    assert old, f"gunicorn's master (host PID {master}) has no workers"
    victim = min(old)
    replaced_after: float | None = None
    with _Load(stack, threads, "/health", seconds, max_requests) as load:
        time.sleep(kill_after)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while time.monotonic() - killed_at < replace_deadline:
            now = _children(master)
            if victim not in now and len(now) == len(old):
                replaced_after = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        # Keep the load on until the planned end, so requests after the replacement are counted too.
        time.sleep(max(0.0, seconds - (time.monotonic() - killed_at) - kill_after))
    after = _workers_in_container(stack, app.name)
    return WorkerKill(
        threads,
        load.sent,
        load.failed,
        dict(load.failures),
        before,
        after,
        victim,
        frozenset(_children(master) - old),
        replaced_after,
    )


@dataclass(frozen=True)
class MainProcessKill:
    restart_count_before: int
    restart_count_after: int
    seconds_to_healthy: float | None
    seconds_to_serving: float | None
    last_seen: str


def kill_app_main_process(stack: Stack, *, deadline: float = 120) -> MainProcessKill:
    """SIGKILL the app container's PID 1 from the host; time until Docker reports it healthy again and
    until HTTPS through Traefik answers 200 again (requests every 0.1 s, each on a new connection)."""
    app = _service(stack, "app")
    count_before = app.restart_count
    killed_at = time.monotonic()
    os.kill(app.state.pid, signal.SIGKILL)
    serving: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set() and time.monotonic() - killed_at < deadline:
            try:
                if stack.https("/health").status_code == 200:
                    serving.append(time.monotonic() - killed_at)
                    return
            except (httpx.HTTPError, ssl.SSLError):
                pass
            time.sleep(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    healthy: float | None = None
    seen = "not inspected"
    again = app
    try:
        while time.monotonic() - killed_at < deadline:
            again = stack.docker.container.inspect(app.id)
            health = again.state.health.status if again.state.health else None
            seen = f"{again.state.status}, health {health}, restarted {again.restart_count} times"
            if again.restart_count > count_before and health == "healthy":
                healthy = time.monotonic() - killed_at
                break
            time.sleep(0.2)
        prober.join(timeout=max(0.0, deadline - (time.monotonic() - killed_at)))
    finally:
        stop.set()
    return MainProcessKill(count_before, again.restart_count, healthy, serving[0] if serving else None, seen)


@dataclass(frozen=True)
class CaUnreachableRestart:
    serial_before: str
    serial_after: str | None
    reachable_before: bool
    reachable_during: bool  # probed again after Traefik's restart, from its new network namespace
    reachable_after_cleanup: bool
    seconds_to_serving: float | None
    rule: list[str]
    acme_log_lines: list[str]


def _gateway_ip(pid: int) -> str:
    """host.docker.internal as the container resolves it (its /etc/hosts, read through /proc)."""
    for line in Path(f"/proc/{pid}/root/etc/hosts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and "host.docker.internal" in parts[1:]:
            return parts[0]
    raise AssertionError("host.docker.internal is not in the Traefik container's /etc/hosts")


def ca_reachable(pid: int, acme_port: int) -> bool:
    """Whether Pebble's ACME directory (on host port ``acme_port``) answers from inside the network namespace of
    host PID ``pid``."""
    url = f"https://{_gateway_ip(pid)}:{acme_port}/dir"
    probe = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "curl", "-sS", "-k", "-o", "/dev/null", "--max-time", "5", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return probe.returncode == 0


def _traefik_subnets(stack: Stack, traefik: Any) -> list[str]:
    """The subnets of the networks Traefik joins: this project's own networks."""
    subnets = []
    for name in traefik.network_settings.networks:
        network = stack.docker.network.inspect(name)
        assert network.labels.get("com.docker.compose.project") == stack.name, f"{name} is not {stack.name}'s"
        subnets += [str(ipaddress.ip_network(c["Subnet"])) for c in network.ipam.config or () if c.get("Subnet")]
    return subnets


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], capture_output=True, text=True, timeout=30)


def ca_unreachable_restart(stack: Stack, *, deadline: float = 90) -> CaUnreachableRestart:
    """Cut this stack's Traefik off the ACME CA (a REJECT rule for its networks' subnets to the host's port
    of its lane's Pebble (lane 0: 14000), nothing else is touched), restart Traefik, and read the certificate it
    serves."""
    acme_port = stack.env.lane.acme_port
    stack.wait_https("/health")
    serial_before = str(stack.peer_certificate()["serialNumber"])
    traefik = _service(stack, "traefik")
    reachable_before = ca_reachable(traefik.state.pid, acme_port)
    rules = [
        [
            "INPUT",
            "-s",
            subnet,
            "-p",
            "tcp",
            "--dport",
            str(acme_port),
            "-m",
            "comment",
            "--comment",
            f"composekit fault test {stack.name}",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
        for subnet in _traefik_subnets(stack, traefik)
    ]
    inserted: list[list[str]] = []
    serial_after: str | None = None
    serving: float | None = None
    reachable_during = True
    acme_lines: list[str] = []
    try:
        for rule in rules:
            added = _iptables("-I", *rule)
            assert added.returncode == 0, f"iptables -I {' '.join(rule)}: {added.stderr.strip()}"
            inserted.append(rule)
        restarted_at = time.monotonic()
        since = datetime.now(UTC)
        stack.docker.container.restart(traefik.id)
        traefik = stack.docker.container.inspect(traefik.id)
        reachable_during = ca_reachable(traefik.state.pid, acme_port)
        while time.monotonic() - restarted_at < deadline:
            try:
                if stack.https("/health").status_code == 200:
                    serving = time.monotonic() - restarted_at
                    serial_after = str(stack.peer_certificate()["serialNumber"])  # verified against Pebble's roots
                    break
            except (httpx.HTTPError, ssl.SSLError):
                pass
            time.sleep(0.2)
        time.sleep(2)  # let Traefik log what it tried
        log = str(stack.docker.container.logs(traefik.id, since=since))
        acme_lines = [line for line in log.splitlines() if f":{acme_port}" in line or "acme" in line.lower()]
        reachable_during = reachable_during or ca_reachable(traefik.state.pid, acme_port)
    finally:
        for rule in inserted:
            while _iptables("-D", *rule).returncode == 0:
                pass
    reachable_after = ca_reachable(stack.docker.container.inspect(traefik.id).state.pid, acme_port)
    return CaUnreachableRestart(
        serial_before,
        serial_after,
        reachable_before,
        reachable_during,
        reachable_after,
        serving,
        rules[0] if rules else [],
        acme_lines,
    )


def copy_stack(source: Path, parent: Path, name: str, env: Any, **overrides: Any) -> Stack:
    """A copy of ``source`` with the local.yaml overlay, as the make_stack fixture builds it (for the report
    script, which runs outside pytest)."""
    target = parent / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
    domain = f"{name}.composekit.test"
    (target / "local.yaml").write_text(
        yaml.safe_dump(env.overlay(name=name, domain=domain, **overrides), sort_keys=False)
    )
    return Stack(dir=target, name=name, domain=domain, env=env)
