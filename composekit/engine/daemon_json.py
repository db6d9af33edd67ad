"""Merging composekit's engine settings into a Docker `daemon.json`: a pure function, no I/O.

The keys composekit owns are `live-restore`, `userland-proxy`, `log-opts/max-size` and `log-opts/max-file`
(it reads `log-driver` but never sets it: absent, the driver is json-file); every other key of the file is
kept as it was, in its place. The result is written as JSON with two-space indentation (dockerd reads JSON
only: it refuses comments, so a file with comments is reported, never rewritten).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

__all__ = [
    "DEFAULT_LOG_MAX_FILE",
    "DEFAULT_LOG_MAX_SIZE",
    "OWNED_KEYS",
    "Change",
    "DaemonJsonError",
    "Merge",
    "Wanted",
    "merge_daemon_json",
]

OWNED_KEYS = ("live-restore", "userland-proxy", "log-opts/max-size", "log-opts/max-file")
DEFAULT_LOG_MAX_SIZE = "10m"
DEFAULT_LOG_MAX_FILE = "3"
# Drivers that rotate by themselves or send logs off the engine's disk: their settings are the user's.
SELF_ROTATING_DRIVERS = (
    "local",
    "journald",
    "syslog",
    "fluentd",
    "gelf",
    "awslogs",
    "gcplogs",
    "splunk",
    "etwlogs",
    "logentries",
    "none",
)


class DaemonJsonError(UserError):
    """An existing daemon.json that composekit will not rewrite: invalid, with comments, or of the wrong shape."""


@dataclass(frozen=True)
class Wanted:
    """The settings to merge; ``None`` leaves that key as the file has it."""

    live_restore: bool | None = True
    userland_proxy: bool | None = False
    log_max_size: str | None = DEFAULT_LOG_MAX_SIZE
    log_max_file: str | None = DEFAULT_LOG_MAX_FILE


@dataclass(frozen=True)
class Change:
    """One key composekit sets: ``before`` is None when the file did not have it."""

    key: str  # "live-restore", "log-opts/max-size"
    before: Any
    after: Any

    def describe(self) -> str:
        if self.before is None:
            return f"{self.key}: set to {json.dumps(self.after)}"
        return f"{self.key}: {json.dumps(self.before)} -> {json.dumps(self.after)}"


@dataclass(frozen=True)
class Merge:
    path: str
    before: str  # the file's text, "" when it does not exist
    after: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...]  # what was left alone on purpose, and why

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{self.path} (now)",
                tofile=f"{self.path} (composekit)",
            )
        )


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _parse(text: str, path: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{path}: line {exc.lineno}, column {exc.colno}"
        if text.startswith(("//", "/*", "#"), exc.pos):
            raise DaemonJsonError(
                f"{where}: a comment; JSON has no comments and dockerd refuses this file: remove them, then run "
                "this command again (it is left as it is)"
            ) from None
        raise DaemonJsonError(
            f"{where}: not valid JSON ({exc.msg}); dockerd cannot read it either: correct it, then run this "
            "command again (it is left as it is)"
        ) from None
    if not isinstance(data, dict):
        raise DaemonJsonError(f"{path}: expected a JSON object at the top, got {_type_name(data)}")
    return data


def merge_daemon_json(text: str | None, wanted: Wanted, path: str = "/etc/docker/daemon.json") -> Merge:
    """The file ``text`` (None: it does not exist) with ``wanted`` merged in.

    live-restore and userland-proxy are set to the wanted value. Log rotation is only added where logs
    would grow on the engine's disk unbounded: no log-driver or `json-file`, and no max-size/max-file of the
    user's own (a size the user chose is kept). Raises DaemonJsonError for a file dockerd could not read.
    """
    before = text or ""
    data = _parse(before, path)
    merged = dict(data)
    changes: list[Change] = []
    notes: list[str] = []

    for key, flag in (("live-restore", wanted.live_restore), ("userland-proxy", wanted.userland_proxy)):
        if flag is None:
            continue
        if merged.get(key) != flag or not isinstance(merged.get(key), bool):
            changes.append(Change(key, merged.get(key), flag))
            merged[key] = flag

    if wanted.log_max_size is not None or wanted.log_max_file is not None:
        driver = merged.get("log-driver")
        opts = merged.get("log-opts")
        if driver is not None and not isinstance(driver, str):
            raise DaemonJsonError(f"{path}: log-driver: expected a string, got {_type_name(driver)}")
        if opts is not None and not (isinstance(opts, dict) and all(isinstance(v, str) for v in opts.values())):
            raise DaemonJsonError(
                f'{path}: log-opts: expected an object of strings (dockerd wants "3", not 3), got {json.dumps(opts)}'
            )
        if driver in SELF_ROTATING_DRIVERS:
            notes.append(f"log-driver is {json.dumps(driver)}: its own rotation or destination, left as it is")
        elif driver not in (None, "json-file"):
            notes.append(f"log-driver is {json.dumps(driver)}: not one composekit knows, left as it is")
        else:
            new_opts = dict(opts or {})
            for key, value in (("max-size", wanted.log_max_size), ("max-file", wanted.log_max_file)):
                if value is None:
                    continue
                if key in new_opts:
                    if new_opts[key] != value:
                        notes.append(f"log-opts/{key} is {json.dumps(new_opts[key])}: your value, kept")
                    continue
                new_opts[key] = value
                changes.append(Change(f"log-opts/{key}", None, value))
            if new_opts != (opts or {}):
                merged["log-opts"] = new_opts

    after = json.dumps(merged, indent=2, ensure_ascii=False) + "\n" if changes else before
    return Merge(path, before, after, tuple(changes), tuple(notes))


def current_values(text: str | None, path: str) -> Mapping[str, Any]:
    """The parsed file, for reading its settings (raises DaemonJsonError like the merge)."""
    return _parse(text or "", path)
