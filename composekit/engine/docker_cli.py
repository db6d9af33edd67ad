"""Running the Docker CLI through python-on-whales for one stack on one engine: every failure becomes a composekit
DockerError that says what was run, what Docker answered and on which engine (a lost SSH connection said as such).

DockerCLI is the base of engine/docker.py's Docker; the modules beside it (compose.py, images.py, swarm_api.py,
lock_container.py) each add one concern's commands on top of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException, NoSuchContainer, NoSuchImage
from python_on_whales.utils import run as run_command

from ..errors import DockerError
from .target import Engine

__all__ = ["CONFINED_PYTHON", "ENGINE_HINT", "DockerCLI", "LineSink"]

T = TypeVar("T")
LineSink = Callable[[str], None]

# A throwaway helper container of composekit's (container.run keywords): python3 as its entrypoint, removed when it
# exits, never pulled, no network, no capability, no new privileges, a read-only root. Callers add their user,
# capabilities, volumes and environment.
CONFINED_PYTHON: dict[str, Any] = {
    "entrypoint": "python3",
    "remove": True,
    "pull": "never",
    "cap_drop": ["ALL"],
    "networks": ["none"],
    "read_only": True,
    "security_options": ["no-new-privileges:true"],
}

ENGINE_HINT = (
    "is the Docker engine installed and running? Start it (systemctl start docker) and check `docker info`; "
    "scripts/setup-env.sh installs and starts one on a fresh Debian machine"
)


def _as_text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while the block runs, for the Compose process it starts
    (python-on-whales passes no environment of its own); the previous values come back afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class DockerCLI:
    """The CLI of one engine for one composekit stack (its compose files and project name), and the engine's own
    answers (version, info)."""

    def __init__(
        self,
        project_name: str,
        compose_files: list[Path],
        project_directory: Path | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.project_name = project_name
        self.compose_files = compose_files
        self.engine = engine or Engine.default()
        # Variables only `docker compose up` reads (the database password of the stack's secret).
        self.compose_environment: dict[str, str] = {}
        # Relative paths in the compose files resolve from here (default: the first file's directory).
        self.client = DockerClient(
            compose_files=list[str | Path](compose_files),
            compose_project_name=project_name,
            compose_project_directory=project_directory,
            host=self.engine.host,
            context=self.engine.context,
        )

    def _failure(self, error: type[DockerError], summary: str, command: list[str], said: str, hint: str) -> DockerError:
        """The error of a failed call, naming the engine; a lost SSH connection is said as such."""
        lost = self.engine.lost()
        refused = self.engine.socket_refused() if lost is None else None
        if lost is not None:
            hint = (
                f"{lost}; run the command again once the server answers `ssh` (nothing else was changed by this call)"
            )
        elif refused is not None:
            hint = refused
        named = self.engine.describe() if self.engine.target.url else None  # a chosen engine, not the default
        return error(summary, command, said, hint, engine=named)

    def _inspect_existing(self, kind: str, ids: list[str]) -> list[dict[str, Any]]:
        """`docker KIND inspect` (container, image) of ``ids`` in one call, as JSON documents. One removed since it
        was listed (another deploy, an edge upgrade, a prune) is left out: the command prints the others and exits 1
        naming it. (python-on-whales inspects each object of a list with a call of its own.)"""
        if not ids:
            return []
        try:
            text = str(run_command([*self.client.client_config.docker_cmd, kind, "inspect", *ids]))
        except (NoSuchContainer, NoSuchImage) as exc:
            text = _as_text(exc.stdout)
        docs: list[dict[str, Any]] = json.loads(text or "[]")
        return docs

    def _call(self, summary: str, fn: Callable[[], T], hint: str = "", error: type[DockerError] = DockerError) -> T:
        try:
            return fn()
        except DockerException as exc:
            said = _as_text(exc.stderr) or _as_text(exc.stdout)
            raise self._failure(error, summary, exc.docker_command, said, hint) from None
        except FileNotFoundError as exc:
            raise DockerError(summary, [], f"{exc.filename}: not found", "install the Docker CLI") from None

    def _stream(
        self,
        summary: str,
        stream: Callable[[], Any],
        on_line: LineSink | None,
        hint: str = "",
        error: type[DockerError] = DockerError,
    ) -> list[str]:
        """Run a streaming command, pass each line to ``on_line``, and keep every line for the error."""
        lines: list[str] = []
        try:
            for _source, raw in stream():
                line = _as_text(raw).rstrip("\n")
                lines.append(line)
                if on_line is not None:
                    on_line(line)
        except DockerException as exc:
            said = "\n".join(lines[-40:]) or _as_text(exc.stderr)
            raise self._failure(error, summary, exc.docker_command, said, hint) from None
        return lines

    def engine_version(self) -> str:
        def version() -> str:
            server = self.client.version().server
            return str(server.version) if server is not None else "unknown"

        return self._call("cannot reach the Docker engine", version, ENGINE_HINT)

    def api_versions(self) -> tuple[str, str]:
        """The engine's API version and the oldest it still accepts."""
        server = self._call(
            "cannot read the Docker engine's version", lambda: self.client.version().server, ENGINE_HINT
        )
        if server is None:
            raise DockerError("the Docker engine did not report its version", ["docker", "version"], "", ENGINE_HINT)
        return str(server.api_version), str(server.min_api_version)

    def root_dir(self) -> str:
        return self._call("cannot read `docker info`", lambda: str(self.client.info().docker_root_dir), ENGINE_HINT)

    def engine_info(self) -> dict[str, Any]:
        """`docker info` under the engine's own JSON keys (LiveRestoreEnabled, LoggingDriver, Swarm, ...)."""
        return self._call(
            "cannot read `docker info`",
            lambda: dict(self.client.info().model_dump(by_alias=True, mode="json")),
            ENGINE_HINT,
        )

    def container_labels(self, container: str) -> dict[str, str]:
        """The labels of ``container`` (here, in the base, for the switch and the lock container alike)."""
        return self._call(
            f"cannot inspect container {container}",
            lambda: dict(self.client.container.inspect(container).config.labels or {}),
            ENGINE_HINT,
        )
