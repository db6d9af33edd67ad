"""What a repository's own Compose file (docker-compose.yml, ...) says about the app's companions, for init's notes
and commented suggestions: a service built from the repository that runs another command than the web server or a
migration (a queue worker: arq, celery, rq, ...) becomes a suggested process; a PostgreSQL or Redis service is named
with composekit's way to run one. Reads only: the file is never run or changed, and nothing of it is enabled."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config.companions import COMPANION_NAME_RE, RESERVED_NAMES

__all__ = ["COMPOSE_FILES", "ComposeHints", "read_compose_hints"]

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# A command that names one of these words is the web server or a migration: composekit runs those itself.
_OWN_WORDS = frozenset({"uvicorn", "gunicorn", "fastapi", "hypercorn", "granian", "daphne", "alembic", "aerich"})


@dataclass(frozen=True)
class ComposeHints:
    file: str | None = None  # the Compose file read, relative to the repository
    processes: dict[str, str] = field(default_factory=dict)  # suggested processes/: name -> command
    notes: list[str] = field(default_factory=list)


def _command(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    if isinstance(value, list) and value and all(isinstance(w, str | int | float) for w in value):
        return shlex.join(str(w) for w in value)
    return None


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _image_name(image: Any) -> str:
    """``postgres`` of ``docker.io/library/postgres:16-alpine``."""
    return str(image).rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].lower() if image else ""


def _process_name(service: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", service.lower()).strip("-")[:63].strip("-") or "worker"
    return f"{name}-process" if name in RESERVED_NAMES or not COMPANION_NAME_RE.match(name) else name


def read_compose_hints(root: Path, database: bool = False) -> ComposeHints:
    """The hints of ``root``'s Compose file; ``database``: the chosen template has one (no PostgreSQL note then)."""
    found = next((root / name for name in COMPOSE_FILES if (root / name).is_file()), None)
    if found is None:
        return ComposeHints()
    try:
        doc = yaml.safe_load(found.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ComposeHints(found.name, notes=[f"{found.name} is not readable YAML: nothing taken from it"])
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        return ComposeHints(found.name)
    processes: dict[str, str] = {}
    notes: list[str] = []
    for service, spec in services.items():
        if not isinstance(spec, dict):
            continue
        image = _image_name(spec.get("image"))
        command = _command(spec.get("command"))
        if "build" in spec and command is not None:
            # Words inside a `sh -c "..."` script count too.
            words = {w.rsplit("/", 1)[-1] for token in _words(command) for w in token.split()}
            if not words & _OWN_WORDS:
                processes[_process_name(str(service))] = command
        elif image in ("postgres", "postgis") and not database:
            notes.append(
                f"{found.name}: service {service} runs PostgreSQL: `composekit init --template fastapi-postgres` "
                "adds one to the stack (its password a secret); database/variables names the variables the app reads"
            )
        elif image in ("redis", "valkey"):
            notes.append(
                f"{found.name}: service {service} runs Redis: add it under accessories: ({service}: {{kind: redis, "
                "password_file: ...}, or {image: ...} for one without a password; docs/companions.md)"
            )
    if processes:
        names = ", ".join(sorted(processes))
        notes.append(
            f"{found.name}: {names} run(s) another command of the app's image: suggested under processes: in "
            "composekit.yaml (commented out; uncomment to run them beside the app)"
        )
    return ComposeHints(found.name, processes, notes)
