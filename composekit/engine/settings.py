"""The Docker engine's own settings that decide whether a daemon restart drops requests.

Measured on a 20.10 engine with 4 HTTPS client threads while dockerd was stopped and started: defaults lost
13,205 of 15,068 requests; `live-restore` alone 6,323 of 10,811 (the userland port proxies die with the
daemon); `live-restore` + `userland-proxy: false` none of 4,971. Unrotated json-file logs fill the disk.

Where each setting is read:
- live-restore, the log driver, Swarm membership: `docker info` (works against a remote engine too).
- userland-proxy and the default log-opts are not in `docker info`. When the engine runs on this machine
  (its name is this host's and its dockerd process is visible in /proc), they are read from what the running
  daemon shows: docker-proxy processes that are its children (userland-proxy is on, live), then its
  command line, then the daemon.json it was started with. For a remote engine they are unknown.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config.fields import Expected, got
from ..config.sections import Logging
from ..errors import ConfigError, UserError
from .daemon_json import DaemonJsonError, Merge, Wanted, current_values, merge_daemon_json

__all__ = [
    "DEFAULT_DAEMON_JSON",
    "SWARM_REFUSAL",
    "EngineSettings",
    "LocalDaemon",
    "apply_advice",
    "check_log_opts",
    "find_local_daemon",
    "local_daemon_for",
    "plan_configure",
    "read_daemon_json",
    "read_engine_settings",
    "skip_wanted",
    "write_daemon_json",
]

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"
DEFAULT_DATA_ROOT = "/var/lib/docker"
SWARM_REFUSAL = (
    'the engine refuses Swarm mode while live-restore is on ("--live-restore daemon configuration is '
    'incompatible with swarm mode")'
)
# dockerd flags that are the same setting as a daemon.json key: dockerd refuses to start when both are given.
FLAG_KEYS = {"--live-restore": "live-restore", "--userland-proxy": "userland-proxy", "--log-opt": "log-opts"}
BOOL_FLAGS = ("--live-restore", "--userland-proxy")


@dataclass(frozen=True)
class LocalDaemon:
    """The dockerd process of this machine that serves the engine, as /proc shows it."""

    pid: int
    argv: tuple[str, ...]
    config_file: str
    config_text: str | None  # None: the file does not exist
    config_error: str = ""  # why the file could not be read or parsed
    proxies: int = 0  # docker-proxy processes it runs

    def flag(self, name: str) -> list[str]:
        """The values given to ``name`` on the command line ("true" for a bare boolean flag)."""
        values = []
        args = list(self.argv[1:])
        for i, arg in enumerate(args):
            if arg == name:
                if name in BOOL_FLAGS:
                    values.append("true")
                elif i + 1 < len(args):
                    values.append(args[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
        return values

    def file_values(self) -> Mapping[str, Any]:
        if self.config_error or self.config_text is None:
            return {}
        try:
            return current_values(self.config_text, self.config_file)
        except DaemonJsonError:
            return {}


@dataclass(frozen=True)
class EngineSettings:
    live_restore: bool
    log_driver: str
    swarm_state: str  # inactive | pending | active | locked | error
    userland_proxy: bool | None  # None: not visible from here
    userland_proxy_source: str
    log_opts: dict[str, str] | None  # the default log-opts; None: not visible from here
    log_opts_source: str
    daemon: LocalDaemon | None = field(default=None, compare=False)

    @property
    def swarm(self) -> bool:
        return self.swarm_state not in ("", "inactive")


def _stat_fields(proc: Path, pid: str) -> tuple[str, int] | None:
    try:
        stat = (proc / pid / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    return comm, int(stat[stat.rindex(")") + 2 :].split()[1])


def find_local_daemon(root_dir: str, proc: Path = Path("/proc")) -> LocalDaemon | None:
    """The dockerd of this machine whose data root is ``root_dir`` (from `docker info`), if visible."""
    processes: dict[int, tuple[str, int]] = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and (fields := _stat_fields(proc, entry.name)) is not None:
            processes[int(entry.name)] = fields
    for pid, (comm, _ppid) in sorted(processes.items()):
        if comm != "dockerd":
            continue
        try:
            argv = tuple(a for a in (proc / str(pid) / "cmdline").read_bytes().decode().split("\0") if a)
        except OSError:
            continue
        probe = LocalDaemon(pid, argv, "", None)
        if (probe.flag("--data-root") or probe.flag("--graph") or [DEFAULT_DATA_ROOT])[-1] != root_dir:
            continue
        config_file = (probe.flag("--config-file") or [DEFAULT_DAEMON_JSON])[-1]
        text, error = None, ""
        try:
            text = Path(config_file).read_text(encoding="utf-8")
            current_values(text, config_file)
        except FileNotFoundError:
            pass
        except OSError as exc:
            error = f"{config_file}: cannot read it ({exc.strerror})"
        except UnicodeDecodeError:
            error = f"{config_file}: cannot read it (not UTF-8 text)"
        except DaemonJsonError as exc:
            error = str(exc)
        proxies = sum(1 for c, ppid in processes.values() if c == "docker-proxy" and ppid == pid)
        return LocalDaemon(pid, argv, config_file, text, error, proxies)
    return None


def _bool(text: str) -> bool:
    return text.lower() in ("1", "t", "true")


def read_engine_settings(info: Mapping[str, Any], daemon: LocalDaemon | None) -> EngineSettings:
    """The settings from `docker info` (``info``, its JSON keys) and, when local, the running dockerd."""
    swarm = info.get("Swarm") or {}
    proxy: bool | None
    opts: dict[str, str] | None
    if daemon is None:
        why = "not visible from here: `docker info` does not report it and the engine's dockerd is not on this machine"
        proxy, proxy_source, opts, opts_source = None, why, None, why
    else:
        where = f"dockerd (pid {daemon.pid})"
        file = daemon.file_values()
        if daemon.proxies:
            proxy, proxy_source = True, f"{daemon.proxies} docker-proxy process(es) of {where}"
        elif flags := daemon.flag("--userland-proxy"):
            proxy, proxy_source = _bool(flags[-1]), f"{where} command line: --userland-proxy={flags[-1]}"
        elif daemon.config_error:
            proxy, proxy_source = None, daemon.config_error
        elif isinstance(file.get("userland-proxy"), bool):
            proxy, proxy_source = bool(file["userland-proxy"]), f"{daemon.config_file} of {where}"
        else:
            proxy = True
            proxy_source = f"Docker's default (neither {where} command line nor {daemon.config_file} sets it)"
        if flags := daemon.flag("--log-opt"):
            opts = dict(f.split("=", 1) for f in flags if "=" in f)
            opts_source = f"{where} command line"
        elif daemon.config_error:
            opts, opts_source = None, daemon.config_error
        else:
            raw = file.get("log-opts")
            opts = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
            opts_source = f"{daemon.config_file} of {where}"
    return EngineSettings(
        live_restore=bool(info.get("LiveRestoreEnabled")),
        log_driver=str(info.get("LoggingDriver") or "json-file"),
        swarm_state=str(swarm.get("LocalNodeState") or "inactive") if isinstance(swarm, dict) else "inactive",
        userland_proxy=proxy,
        userland_proxy_source=proxy_source,
        log_opts=opts,
        log_opts_source=opts_source,
        daemon=daemon,
    )


def local_daemon_for(
    info: Mapping[str, Any], hostname: str | None = None, proc: Path = Path("/proc")
) -> LocalDaemon | None:
    """The engine's dockerd when it runs on this machine (same host name, process visible), else None."""
    if str(info.get("Name") or "") != (hostname or socket.gethostname()):
        return None
    return find_local_daemon(str(info.get("DockerRootDir") or DEFAULT_DATA_ROOT), proc)


# configure ------------------------------------------------------------------------------------------


def read_daemon_json(path: Path) -> str | None:
    """The file's text, None when it does not exist; an unreadable file is a UserError (nothing is written)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UserError(f"{path}: cannot read it ({why}); it is left as it is") from None


def plan_configure(path: Path, text: str | None, wanted: Wanted, settings: EngineSettings | None) -> Merge:
    """The merge to write, after refusing what the engine would refuse (Swarm, flags that clash)."""
    if settings is not None and settings.swarm and wanted.live_restore:
        raise UserError(
            f"engine configure: this engine is a Swarm node (docker info: Swarm/LocalNodeState "
            f"{settings.swarm_state}): {SWARM_REFUSAL}; run again with --skip live-restore for the other settings"
        )
    daemon = settings.daemon if settings is not None else None
    if daemon is not None and Path(daemon.config_file) == path:
        asked = {
            "live-restore": wanted.live_restore is not None,
            "userland-proxy": wanted.userland_proxy is not None,
            "log-opts": wanted.log_max_size is not None or wanted.log_max_file is not None,
        }
        for flag, key in FLAG_KEYS.items():
            if asked.get(key) and daemon.flag(flag):
                raise UserError(
                    f"engine configure: dockerd (pid {daemon.pid}) has {flag} on its command line, and dockerd "
                    f"refuses to start when a setting is both a flag and in {path}: remove the flag (for systemd, "
                    f"from the unit's ExecStart) or run again with --skip {key}"
                )
        driver = daemon.flag("--log-driver")
        if asked["log-opts"] and driver and driver[-1] != "json-file":
            raise UserError(
                f"engine configure: dockerd (pid {daemon.pid}) runs with --log-driver {driver[-1]}, which does not "
                "take json-file's max-size/max-file: run again with --skip log-opts"
            )
    return merge_daemon_json(text, wanted, str(path))


def apply_advice(merge: Merge, daemon: LocalDaemon | None) -> str:
    """How to make the written settings live: live-restore reloads; the rest needs a restart."""
    keys = {c.key for c in merge.changes}
    hup = f"`systemctl reload docker` (or `kill -HUP {daemon.pid}`)" if daemon else "`systemctl reload docker`"
    if keys <= {"live-restore"}:
        return f"apply: {hup}: dockerd reloads live-restore without a restart"
    restart = "`systemctl restart docker`"
    parts = [f"apply: {restart}: userland-proxy and log-opts take effect at dockerd's start only"]
    if "log-opts/max-size" in keys or "log-opts/max-file" in keys:
        parts.append("log-opts apply to containers created afterwards (`composekit up` recreates the stack's)")
    if "userland-proxy" in keys:
        parts.append("changing userland-proxy restarts the containers once (restart: always brings the stack back)")
    return "; ".join(parts)


def write_daemon_json(merge: Merge, path: Path, now: float | None = None) -> Path | None:
    """Write the merged file atomically; keep the old one as a timestamped backup (returned, None if new)."""
    backup = None
    if merge.before or path.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        backup = path.with_name(f"{path.name}.{stamp}.bak")
        shutil.copy2(path, backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.composekit.tmp")
    tmp.write_text(merge.after, encoding="utf-8")
    mode = (path.stat().st_mode & 0o777) if path.exists() else 0o644
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return backup


def check_log_opts(log_max_size: str, log_max_file: str) -> None:
    """--log-max-size and --log-max-file take what the config's logging/max_size and logging/max_file take: they are
    validated by config/sections.py's Logging itself, and every bad one is named (ConfigError, one line each)."""
    given = {"max_size": log_max_size, "max_file": log_max_file}
    # The config's max_file is a YAML integer: a command line's digits are that integer, anything else stays text.
    values: dict[str, Any] = {
        **given,
        "max_file": int(log_max_file) if log_max_file.isascii() and log_max_file.isdecimal() else log_max_file,
    }
    try:
        Logging.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0])
            info = Logging.model_fields[field]
            expected = next((m.text for m in info.metadata if isinstance(m, Expected)), None)
            problem = str(error["msg"]).removeprefix("Value error, ")
            if expected is not None:
                problem = f"expected {expected}, got {got(given[field])}"
            problems.append(f"--log-{field.replace('_', '-')}: {problem} (as logging/{field} in the config)")
        raise ConfigError(problems) from None


def skip_wanted(skip: Sequence[str], log_max_size: str, log_max_file: str) -> Wanted:
    """The Wanted settings minus the keys named in ``skip`` (live-restore, userland-proxy, log-opts)."""
    known = ("live-restore", "userland-proxy", "log-opts")
    for key in skip:
        if key not in known:
            raise UserError(f'--skip: expected one of {", ".join(known)}, got "{key}"')
    if "log-opts" not in skip:
        check_log_opts(log_max_size, log_max_file)
    return Wanted(
        live_restore=None if "live-restore" in skip else True,
        userland_proxy=None if "userland-proxy" in skip else False,
        log_max_size=None if "log-opts" in skip else log_max_size,
        log_max_file=None if "log-opts" in skip else log_max_file,
    )
