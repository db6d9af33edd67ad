"""The deploy lock's primitives on the engine: a never-started container, created atomically by name (engine/lock.py
decides who holds it)."""

from __future__ import annotations

from python_on_whales.exceptions import DockerException

from ..errors import DockerError
from .docker_cli import ENGINE_HINT, DockerCLI, _as_text

__all__ = ["LockContainers"]


class LockContainers(DockerCLI):
    """Create, read and remove the lock container."""

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        """Create the (never started) container ``name`` as a lock: the engine refuses a second container of the
        same name, atomically. Returns its container ID; None when it already exists."""
        try:
            created = self.client.container.create(
                image, ["true"], name=name, labels=labels, pull="missing", networks=["none"]
            )
        except DockerException as exc:
            if "is already in use" in _as_text(exc.stderr):
                return None
            raise DockerError(
                f"cannot create the deploy lock {name}", exc.docker_command, _as_text(exc.stderr), ENGINE_HINT
            ) from None
        return str(created.id)

    def lock_labels(self, name: str) -> dict[str, str] | None:
        """The labels of the lock container ``name``; None when there is none."""
        if not self._call(f"cannot inspect {name}", lambda: self.client.container.exists(name), ENGINE_HINT):
            return None
        return self.container_labels(name)

    def lock_id(self, name: str) -> str | None:
        """The container ID of the lock ``name``; None when there is none."""
        if not self._call(f"cannot inspect {name}", lambda: self.client.container.exists(name), ENGINE_HINT):
            return None
        return self._call(f"cannot inspect {name}", lambda: str(self.client.container.inspect(name).id), ENGINE_HINT)

    def remove_lock(self, container: str) -> bool:
        """Remove the lock container ``container`` (a name or an ID: a deploy releases its own lock by ID, so a lock
        another deploy took since, after --break-lock, stays). False when that container is already gone."""
        try:
            self.client.container.remove(container)  # never started; without -f a missing one is an error
        except DockerException as exc:
            said = _as_text(exc.stderr) or _as_text(exc.stdout)
            if "No such container" in said:
                return False
            raise self._failure(
                DockerError, f"cannot remove the deploy lock {container}", exc.docker_command, said, ENGINE_HINT
            ) from None
        return True
