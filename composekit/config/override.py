"""The override file (composekit.override.yaml): its shape checked against Compose's own keys before Docker sees it."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .load import read_yaml

__all__ = ["COMPOSE_SERVICE_KEYS", "COMPOSE_TOP_LEVEL_KEYS", "check_override"]


# Compose's own vocabulary (the compose-spec schema of Compose v2.40): an override file that uses anything
# else would be refused by `docker compose` only after composekit had written and built; refuse it first.
COMPOSE_TOP_LEVEL_KEYS = frozenset(
    {"configs", "include", "models", "name", "networks", "secrets", "services", "version", "volumes"}
)
COMPOSE_SERVICE_KEYS = frozenset(
    {
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "pull_refresh_after",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    }
)


def check_override(path: Path) -> list[str]:
    """The override file's shape, before Docker sees it: YAML, a mapping, Compose's keys (or x- extensions)."""
    try:
        doc = read_yaml(path)  # an empty file reads as {}: Compose accepts it too
    except ConfigError as exc:
        return exc.problems
    if not isinstance(doc, dict):
        return [
            f"{path}: expected a mapping of Compose keys (services, volumes, ...) at the top level, got {_kind(doc)}"
        ]
    problems: list[str] = []
    for key, value in doc.items():
        if not isinstance(key, str) or not (key in COMPOSE_TOP_LEVEL_KEYS or key.startswith("x-")):
            known = ", ".join(sorted(COMPOSE_TOP_LEVEL_KEYS))
            problems.append(f"{path}: {key}: unknown Compose key (expected one of: {known}, or x-...)")
        elif key in ("configs", "models", "networks", "secrets", "services", "volumes") and not isinstance(value, dict):
            problems.append(f"{path}: {key}: expected a mapping, got {_kind(value)}")
    services = doc.get("services")
    for service, settings in services.items() if isinstance(services, dict) else ():
        if settings is not None and not isinstance(settings, dict):
            problems.append(
                f"{path}: services/{service}: expected a mapping of Compose service keys, got {_kind(settings)}"
            )
            continue
        for key in settings or {}:
            if not isinstance(key, str) or not (key in COMPOSE_SERVICE_KEYS or key.startswith("x-")):
                problems.append(
                    f"{path}: services/{service}/{key}: unknown Compose service key (extension keys start with x-)"
                )
    return problems


def _kind(value: object) -> str:
    return (
        "null"
        if value is None
        else {"str": "a string", "list": "a list", "int": "a number", "float": "a number", "bool": "a boolean"}.get(
            type(value).__name__, type(value).__name__
        )
    )
