"""Gunicorn settings for a composekit app container, delivered as ``/etc/composekit/gunicorn.conf.py``.

Workers are sized here, at container start, from the CPUs and memory the container really has
(cgroup v1 or v2 CPU quota and cpuset, memory limit), not from the host's core count: a container
limited to 1 CPU on a 64-core host must not start 64 workers. The limits are read in the container's own
cgroup as /proc/self/cgroup names it, so they are found with `cgroupns=host` too (where /sys/fs/cgroup is
the host's whole tree), and in its ancestors (the smallest wins). This file imports nothing from
composekit; it runs inside the app image with the standard library only.

Environment (all optional):
  WEB_CONCURRENCY     exact worker count; overrides everything else
  WORKERS_PER_CORE    workers per effective CPU (default 1)
  MIN_WORKERS         floor when sizing automatically (default 2; the memory cap may go lower)
  MAX_WORKERS         ceiling
  WORKER_MEMORY_MB    memory budget per worker; caps the count at limit // budget (default 256)
  APP_PORT            port to bind (default 8000)
  FORWARDED_ALLOW_IPS proxies whose X-Forwarded-* headers are trusted (composekit sets Traefik's address;
                      default 127.0.0.1)
  GRACEFUL_TIMEOUT    seconds a worker gets to finish requests on shutdown (default 30)
  DRAIN_SECONDS       set in mode: swarm: on the first SIGTERM (or SIGINT) keep serving this long before
                      gunicorn's graceful stop, so Traefik's Swarm provider drops the task first (default 0)
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

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


def own_cgroups(self_cgroup: str | Path = "/proc/self/cgroup") -> dict[str, str]:
    """This process's cgroup path per v1 controller (``"cpu"``, ``"memory"``, ...), and ``""`` for v2."""
    paths: dict[str, str] = {}
    try:
        lines = Path(self_cgroup).read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path.startswith("/"):
            continue
        if hierarchy == "0" and not controllers:
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _dirs(base: Path, path: str | None) -> list[Path]:
    """The cgroup directory of this process and its ancestors under ``base``, innermost first, then ``base``.

    With a private cgroup namespace the path is ``/`` (base is the container's cgroup); with ``cgroupns=host``
    it is the container's path in the host's tree, which may or may not be mounted at base."""
    dirs: list[Path] = []
    parts = PurePosixPath(path).parts[1:] if path else ()
    if ".." not in parts:
        for depth in range(len(parts), 0, -1):
            candidate = base.joinpath(*parts[:depth])
            if candidate.is_dir():
                dirs.append(candidate)
    return [*dirs, base]


def _below(root: Path, d: Path) -> str:
    """``d`` as a cgroup path: relative to its hierarchy's mount point (a v1 controller's directory)."""
    parts = d.relative_to(root).parts
    if parts and not (root / "cgroup.controllers").exists():
        parts = parts[1:]  # v1: the first part is the controller's directory
    return "/" + "/".join(parts)


def _v1_base(root: Path, *names: str) -> Path:
    return next((root / n for n in names if (root / n).is_dir()), root / names[0])


def read_resources(
    root: str | Path = "/sys/fs/cgroup", host_cpus: int | None = None, self_cgroup: str | Path = "/proc/self/cgroup"
) -> Resources:
    """CPU quota, cpuset and memory limit of this process's cgroup (v2 unified or v1 hierarchies)."""
    root = Path(root)
    host = host_cpus if host_cpus is not None else (os.cpu_count() or 1)
    own = own_cgroups(self_cgroup)
    quotas: list[float] = []
    memories: list[int] = []
    cpuset: int | None = None
    used: set[str] = set()  # cgroup paths below the mount point that held a limit

    if (root / "cgroup.controllers").exists():
        source = "cgroup v2"
        for d in _dirs(root, own.get("")):
            cpu_max = _read(d / "cpu.max")
            if cpu_max:
                q, _, p = cpu_max.partition(" ")
                if q != "max" and p:
                    quotas.append(int(q) / int(p))
                    used.add(_below(root, d))
            mem = _read(d / "memory.max")
            if mem and mem != "max":
                memories.append(int(mem))
                used.add(_below(root, d))
            spec = _read(d / "cpuset.cpus.effective") or _read(d / "cpuset.cpus")
            if cpuset is None and spec:  # the innermost one: "effective" already reflects the ancestors
                cpuset = count_cpu_list(spec)
                used.add(_below(root, d))
    else:
        source = "cgroup v1"
        for d in _dirs(_v1_base(root, "cpu", "cpu,cpuacct"), own.get("cpu")):
            q1, p1 = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if q1 and p1 and int(q1) > 0 and int(p1) > 0:
                quotas.append(int(q1) / int(p1))
                used.add(_below(root, d))
        for d in _dirs(root / "cpuset", own.get("cpuset")):
            spec = _read(d / "cpuset.effective_cpus") or _read(d / "cpuset.cpus")
            if spec:
                cpuset = count_cpu_list(spec)
                used.add(_below(root, d))
                break
        for d in _dirs(root / "memory", own.get("memory")):
            mem = _read(d / "memory.limit_in_bytes")
            if mem and 0 < int(mem) < _UNLIMITED_MEMORY:
                memories.append(int(mem))
                used.add(_below(root, d))
        if not quotas and cpuset is None and not memories and not (root / "cpu").exists():
            source = "no cgroup limits found"
    nested = sorted(p for p in used if p != "/")
    if nested:
        source += f" at {max(nested, key=len)}"
    if cpuset is not None and cpuset > host:
        cpuset = host
    return Resources(
        host_cpus=host,
        quota_cpus=min(quotas) if quotas else None,
        cpuset_cpus=cpuset,
        memory_limit=min(memories) if memories else None,
        source=source,
    )


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


def drain_seconds(env: dict[str, str]) -> float:
    raw = env.get("DRAIN_SECONDS", "").strip() or "0"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 600:
        raise ValueError(f"DRAIN_SECONDS must be 0 to 600 seconds, got {raw!r}")
    return seconds


def drain_hook(seconds: float) -> Any:
    """Gunicorn's `when_ready` hook (it runs in the master after gunicorn has installed its signal handlers):
    the first SIGTERM or SIGINT starts a timer that hands the signal to gunicorn after ``seconds``; until then
    the workers keep serving. A second signal during the delay goes to gunicorn at once."""

    def when_ready(_server: Any) -> None:
        draining: list[threading.Timer] = []  # the one drain, whichever signal started it
        for sig in (signal.SIGTERM, signal.SIGINT):
            handover = signal.getsignal(sig)
            if not callable(handover):
                continue

            def delayed(signum: int, frame: Any, handover: Any = handover) -> None:
                if draining:
                    draining[0].cancel()
                    handover(signum, frame)
                    return
                # A signal handler: no logging module (its locks), one write to stderr.
                os.write(
                    2,
                    f"composekit: signal {signum}: serving {seconds:g}s more while the proxy drops this task, then "
                    "stopping\n".encode(),
                )
                timer = threading.Timer(seconds, handover, (signum, frame))
                timer.daemon = True
                draining.append(timer)
                timer.start()

            signal.signal(sig, delayed)

    return when_ready


def _fmt(value: float | int | None) -> str:
    return "none" if value is None else f"{value:g}"


# The worker classes, in order of preference: uvicorn-worker's, else uvicorn's own (deprecated since uvicorn 0.30, still
# shipped), so an image that installs gunicorn and uvicorn only (an app's own Dockerfile) runs too.
WORKER_CLASSES = (
    ("uvicorn_worker", "uvicorn_worker.UvicornWorker"),
    ("uvicorn.workers", "uvicorn.workers.UvicornWorker"),
)


def worker_class(found: Callable[[str], bool]) -> str:
    """The first of WORKER_CLASSES whose module ``found`` finds; else the first, which gunicorn then names in its
    error (`composekit up` checks the image for one before it starts anything)."""
    for module, cls in WORKER_CLASSES:
        if found(module):
            return cls
    return WORKER_CLASSES[0][1]


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False


def settings(
    env: dict[str, str], resources: Resources, found: Callable[[str], bool] = _importable
) -> dict[str, object]:
    """Gunicorn's settings for this container, and the log line that explains them."""
    workers, why = compute_workers(resources, env)
    worker = worker_class(found)
    # Only the proxy's own address: every other container on the app's networks could forge X-Forwarded-*.
    forwarded = env.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
    drain = drain_seconds(env)
    hooks: dict[str, object] = {"when_ready": drain_hook(drain)} if drain else {}
    return {
        **hooks,
        "bind": f"0.0.0.0:{env.get('APP_PORT', '8000')}",
        "workers": workers,
        "worker_class": worker,
        "worker_tmp_dir": "/dev/shm",
        # Gunicorn 25.1+ opens a control socket for `gunicornc` under $HOME: on the read-only root it logs an ERROR
        # at every start, and nothing here uses it (it could resize or stop the workers). Older versions ignore this.
        "control_socket_disable": True,
        "graceful_timeout": int(env.get("GRACEFUL_TIMEOUT", "30")),
        "timeout": int(env.get("WORKER_TIMEOUT", "60")),
        # Above Traefik's idle timeout to its backends (60s, set in traefik.yml), so the proxy closes first.
        "keepalive": int(env.get("KEEPALIVE", "75")),
        "forwarded_allow_ips": forwarded,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": env.get("LOG_LEVEL", "info"),
        "capture_output": True,
        "_explanation": f"composekit: workers={workers} ({why}); worker_class={worker}; forwarded_allow_ips={forwarded}"
        + (f"; drain {drain:g}s before a graceful stop" if drain else ""),
    }


if __name__ != "composekit.runtime.gunicorn_conf":  # loaded by gunicorn as its config file
    _settings = settings(dict(os.environ), read_resources())
    print(_settings.pop("_explanation"), file=sys.stderr, flush=True)
    globals().update(_settings)
