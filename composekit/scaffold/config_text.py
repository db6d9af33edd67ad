"""The commented composekit.yaml that `composekit init` writes, from the settings it decided (scaffold/settings.py)."""

from __future__ import annotations

from typing import Any

import yaml

from ..config.sections import DEFAULT_POSTGRES_IMAGE, DEFAULT_PYTHON_IMAGE, DEFAULT_REDIS_IMAGE
from .settings import InitSettings
from .templates import SCHEMA_FILENAME

__all__ = ["render_config"]


def _scalar(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _line(key: str, value: Any, comment: str = "", indent: int = 0) -> str:
    text = f"{'  ' * indent}{key}: {_scalar(value)}" if value is not None else f"{'  ' * indent}{key}:"
    return _commented(text, comment)


def _commented(text: str, comment: str) -> str:
    return f"{text:<34} # {comment}" if comment else text


def render_config(s: InitSettings) -> str:
    lines = [
        f"# yaml-language-server: $schema=./{SCHEMA_FILENAME}",
        f"# composekit.yaml, written by `composekit init` (template {s.template}).",
        f"# Editors validate and complete keys from {SCHEMA_FILENAME}; `composekit schema > {SCHEMA_FILENAME}`",
        "# refreshes it after an upgrade. `composekit up` deploys; `composekit render --check` in CI keeps",
        "# checked-in rendered files honest.",
        _line("name", s.name, "Compose project: containers, volumes and the image are named after it"),
        _line("domain", s.domain, "CHANGE ME: the DNS name of this server (its certificate comes from ACME)"),
        "acme:",
        _commented("  # email: ops@example.com", "expiry notices from the CA"),
        _line("ca_server", "production", "production | staging | https://... (any ACME directory)", 1),
        "app:",
        *([_line("path", s.path, "the build context: the project with the lock file", 1)] if s.path != "." else []),
        *(
            [_line("workdir", s.workdir, "where the app runs, inside path: its imports start here", 1)]
            if s.workdir != "."
            else []
        ),
        *(
            [_line("dockerfile", s.dockerfile, "your production Dockerfile, chosen over Dockerfile", 1)]
            if s.dockerfile
            else []
        ),
        _line("module", s.module, s.module_note, 1),
        _line("health_path", s.health_path, s.health_note, 1),
        _line("workers", "auto", "sized at start from the container's CPUs and memory", 1),
        _commented("  # memory: 512M", "memory limit; also caps the automatic worker count (256M each)"),
        _commented("  # env_file: .env", "the app's secrets (VARIABLE=value), never copied into rendered files"),
    ]
    if s.app_environment:
        lines.append(_line("environment", None, "non-secret variables", 1))
        lines.extend(_line(k, v, "", 2) for k, v in sorted(s.app_environment.items()))
    if s.app_secrets:
        lines.append(_line("secrets", None, "VARIABLE: file; in the process environment only, keep out of git", 1))
        lines.extend(_line(k, v, "", 2) for k, v in sorted(s.app_secrets.items()))
    if s.volumes:
        lines.append(_line("volumes", None, "named volumes: data that survives redeploys", 1))
        lines.extend(_line(k, v, "", 2) for k, v in sorted(s.volumes.items()))
    if s.migrate is not None:
        lines.append("migrate:")
        lines.append(
            _line(
                "command",
                s.migrate if isinstance(s.migrate, str) else list(s.migrate),
                "runs once before the app starts, on every deploy",
                1,
            )
        )
    else:
        lines.extend(
            [
                _commented("# migrate:", "a one-shot step before the app starts, on every deploy"),
                "#   command: alembic upgrade head",
            ]
        )
    if s.database:
        db = s.database
        lines.extend(
            [
                _line("database", None, "a PostgreSQL service `db`; the app and migrate get DATABASE_HOST,"),
                _commented("", "DATABASE_PORT, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD_FILE"),
                _line("engine", db["engine"], "", 1),
                _line("name", db["name"], "created at the first start", 1),
                _line("user", db["user"], "", 1),
                _line(
                    "password_file", db["password_file"], "a Docker secret: never in compose.yaml; keep out of git", 1
                ),
            ]
        )
    lines.extend(_companions(s))
    if s.suggested_processes and not s.processes:
        lines.append(
            "# processes:                       # from your Compose file: uncomment to run them beside the app"
        )
        lines.extend(f"#   {name}: {_scalar(command)}" for name, command in sorted(s.suggested_processes.items()))
    if s.python_image is not None:
        lines.extend(["images:", _line("python", s.python_image, "satisfies requires-python; pin a tested version", 1)])
    else:
        lines.extend(
            [
                _commented("# images:", "defaults shown; pin versions you have tested"),
                f"#   python: {DEFAULT_PYTHON_IMAGE}",
            ]
        )
    if s.database:
        lines.append(
            _commented(f"#   postgres: {DEFAULT_POSTGRES_IMAGE}", "data in /var/lib/postgresql/data (18 moved it)")
        )
    if any(a.get("kind") == "redis" for a in s.accessories.values()):
        lines.append(_commented(f"#   redis: {DEFAULT_REDIS_IMAGE}", "the image of accessories of kind: redis"))
    return "\n".join(lines) + "\n"


_PROCESS_COMMENTS = {
    "command": "the app's image, environment and secrets; no port",
    "health_command": "exits 0 while healthy; `up` waits for it before the switch",
    "stop_grace": "seconds to finish the job it holds after SIGTERM",
}


def _companions(s: InitSettings) -> list[str]:
    """processes and accessories (docs/companions.md); an accessory's settings one per line."""
    lines: list[str] = []
    if s.processes:
        lines.append(_line("processes", None, "more commands of the app's image, deployed with each release"))
        for name, process in sorted(s.processes.items()):
            lines.append(_line(name, None, "", 1))
            lines.extend(_line(k, v, _PROCESS_COMMENTS.get(k, ""), 2) for k, v in process.items())
    if s.accessories:
        lines.append(_line("accessories", None, "other images beside the app, never recreated by an app deploy"))
        for name, accessory in sorted(s.accessories.items()):
            lines.append(_line(name, None, "", 1))
            for key, value in accessory.items():
                comment = "Redis gets only its SHA-256 (an ACL file); keep out of git" if key == "password_file" else ""
                lines.append(_line(key, value, comment, 2))
    return lines
