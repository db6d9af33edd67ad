"""Gunicorn settings for a composekit app container, rendered as ``gunicorn.conf.py``.

Workers are sized here, at container start, from the CPUs and memory the container really has
(cgroup v1 or v2 CPU quota and cpuset, memory limit), not from the host's core count: a container
limited to 1 CPU on a 64-core host must not start 64 workers. This file imports nothing from
composekit; it runs inside the app image with the standard library only.

Environment (all optional):
  WEB_CONCURRENCY     exact worker count; overrides everything else
  WORKERS_PER_CORE    workers per effective CPU (default 1)
  MIN_WORKERS         floor when sizing automatically (default 2; the memory cap may go lower)
  MAX_WORKERS         ceiling
  WORKER_MEMORY_MB    memory budget per worker; caps the count at limit // budget (default 256)
  APP_PORT            port to bind (default 8000)
  FORWARDED_ALLOW_IPS proxies whose X-Forwarded-* headers are trusted (default: this container's networks)
  GRACEFUL_TIMEOUT    seconds a worker gets to finish requests on shutdown (default 30)
"""

from __future__ import annotations

import math
import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

_UNLIMITED_MEMORY = 1 << 60


@dataclass(frozen=True)
class Resources:
    host_cpus: int
    quota_cpus: float | None
    cpuset_cpus: int | None
    memory_limit: int | None
    source: str

    @property
    def effective_cpus(self) -> int:
        candidates: list[float] = [self.host_cpus]
        if self.quota_cpus is not None:
            candidates.append(self.quota_cpus)
        if self.cpuset_cpus is not None:
            candidates.append(self.cpuset_cpus)
        return max(1, math.ceil(min(candidates)))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def count_cpu_list(spec: str) -> int | None:
    """``"0-3,8,10-11"`` -> 7."""
    total = 0
    for part in spec.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            total += (int(hi) - int(lo) + 1) if hi else (int(lo) >= 0)
        except ValueError:
            return None
    return total or None


def read_resources(root: str | Path = "/sys/fs/cgroup", host_cpus: int | None = None) -> Resources:
    """CPU quota, cpuset and memory limit of the current cgroup (v2 unified or v1 hierarchies)."""
    root = Path(root)
    host = host_cpus if host_cpus is not None else (os.cpu_count() or 1)
    quota: float | None = None
    cpuset: int | None = None
    memory: int | None = None

    if (root / "cgroup.controllers").exists():
        source = "cgroup v2"
        cpu_max = _read(root / "cpu.max")
        if cpu_max:
            q, _, p = cpu_max.partition(" ")
            if q != "max" and p:
                quota = int(q) / int(p)
        spec = _read(root / "cpuset.cpus.effective") or _read(root / "cpuset.cpus")
        cpuset = count_cpu_list(spec) if spec else None
        mem = _read(root / "memory.max")
        if mem and mem != "max":
            memory = int(mem)
    else:
        source = "cgroup v1"
        q1 = _read(root / "cpu" / "cpu.cfs_quota_us") or _read(root / "cpu,cpuacct" / "cpu.cfs_quota_us")
        p1 = _read(root / "cpu" / "cpu.cfs_period_us") or _read(root / "cpu,cpuacct" / "cpu.cfs_period_us")
        if q1 and p1 and int(q1) > 0 and int(p1) > 0:
            quota = int(q1) / int(p1)
        spec = _read(root / "cpuset" / "cpuset.effective_cpus") or _read(root / "cpuset" / "cpuset.cpus")
        cpuset = count_cpu_list(spec) if spec else None
        mem = _read(root / "memory" / "memory.limit_in_bytes")
        if mem and 0 < int(mem) < _UNLIMITED_MEMORY:
            memory = int(mem)
        if quota is None and cpuset is None and memory is None and not (root / "cpu").exists():
            source = "no cgroup limits found"
    if cpuset is not None and cpuset > host:
        cpuset = host
    return Resources(host_cpus=host, quota_cpus=quota, cpuset_cpus=cpuset, memory_limit=memory, source=source)


def _env_int(env: dict[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{key} must be a positive integer, got {raw!r}")
    return value


def compute_workers(resources: Resources, env: dict[str, str]) -> tuple[int, str]:
    """The worker count and a one-line explanation of how it was reached."""
    fixed = _env_int(env, "WEB_CONCURRENCY")
    if fixed is not None:
        return fixed, f"WEB_CONCURRENCY={fixed}"
    per_core = float(env.get("WORKERS_PER_CORE", "") or 1)
    if per_core <= 0:
        raise ValueError(f"WORKERS_PER_CORE must be positive, got {per_core}")
    floor = _env_int(env, "MIN_WORKERS") or 2
    cpus = resources.effective_cpus
    workers = max(floor, math.ceil(cpus * per_core))
    why = [
        f"{resources.source}: cpu quota={_fmt(resources.quota_cpus)} cpuset={_fmt(resources.cpuset_cpus)} "
        f"host={resources.host_cpus} -> {cpus} cpu(s) x WORKERS_PER_CORE={per_core:g} (min {floor})"
    ]
    ceiling = _env_int(env, "MAX_WORKERS")
    if ceiling is not None and workers > ceiling:
        workers = ceiling
        why.append(f"capped by MAX_WORKERS={ceiling}")
    budget_mb = _env_int(env, "WORKER_MEMORY_MB") or 256
    if resources.memory_limit is not None:
        by_memory = max(1, resources.memory_limit // (budget_mb * 1024 * 1024))
        if workers > by_memory:
            workers = by_memory
            why.append(f"capped by memory {resources.memory_limit // (1024 * 1024)}MiB / {budget_mb}MiB per worker")
    return workers, "; ".join(why)


def _fmt(value: float | int | None) -> str:
    return "none" if value is None else f"{value:g}"


def container_networks(route_table: str = "/proc/net/route") -> list[str]:
    """The IPv4 networks this container is attached to (where its proxy lives), as CIDRs."""
    networks: list[str] = []
    try:
        lines = Path(route_table).read_text().splitlines()[1:]
    except OSError:
        return networks
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000" or fields[0] == "lo":
            continue
        dest = socket.inet_ntoa(struct.pack("<L", int(fields[1], 16)))
        prefix = bin(int(fields[7], 16)).count("1")
        cidr = f"{dest}/{prefix}"
        if cidr not in networks:
            networks.append(cidr)
    return networks


def settings(env: dict[str, str], resources: Resources, networks: list[str]) -> dict[str, object]:
    """Gunicorn's settings for this container, and the log line that explains them."""
    workers, why = compute_workers(resources, env)
    forwarded = env.get("FORWARDED_ALLOW_IPS") or ",".join(networks) or "127.0.0.1"
    return {
        "bind": f"0.0.0.0:{env.get('APP_PORT', '8000')}",
        "workers": workers,
        "worker_class": "uvicorn_worker.UvicornWorker",
        "worker_tmp_dir": "/dev/shm",
        "graceful_timeout": int(env.get("GRACEFUL_TIMEOUT", "30")),
        "timeout": int(env.get("WORKER_TIMEOUT", "60")),
        # Above Traefik's idle timeout to its backends (60s, set in traefik.yml), so the proxy closes first.
        "keepalive": int(env.get("KEEPALIVE", "75")),
        "forwarded_allow_ips": forwarded,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": env.get("LOG_LEVEL", "info"),
        "capture_output": True,
        "_explanation": f"composekit: workers={workers} ({why}); forwarded_allow_ips={forwarded}",
    }


if __name__ != "composekit.runtime.gunicorn_conf":  # loaded by gunicorn as its config file
    _settings = settings(dict(os.environ), read_resources(), container_networks())
    print(_settings.pop("_explanation"), file=sys.stderr, flush=True)
    globals().update(_settings)
