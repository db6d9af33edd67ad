"""The containers backups run in (engine/backup.py, backup_restore.py decide what runs): a helper that stays up for
one backup or restore (exec'd into, files copied in and out), one-shot runs of the database image, and the stack's
app stopped and started around a restore. Every helper is labelled ``composekit.backup=<project>``."""

from __future__ import annotations

from pathlib import Path

from python_on_whales.exceptions import DockerException

from .docker_cli import ENGINE_HINT, DockerCLI, _as_text, _environment

__all__ = ["BACKUP_LABEL", "BackupContainers"]

BACKUP_LABEL = "composekit.backup"

# PID 1 of a helper: waits, and exits at once on SIGTERM.
_PAUSE = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\nsignal.pause()\n"


class BackupContainers(DockerCLI):
    """Helpers for backups and restores: no network unless named, no capabilities but the ones asked for."""

    def volume_exists(self, name: str) -> bool:
        return self._call(f"cannot inspect volume {name}", lambda: bool(self.client.volume.exists(name)), ENGINE_HINT)

    def create_labelled_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create ``name`` unless it exists; not labelled as Compose's, so `down --delete-volumes` leaves it."""
        if not self.volume_exists(name):
            self._call(f"cannot create volume {name}", lambda: self.client.volume.create(name, labels=labels))

    def start_helper(
        self,
        name: str,
        image: str,
        mounts: list[tuple[str, str, str]],
        caps: list[str],
        network: str = "none",
        hosts: list[tuple[str, str]] | None = None,
    ) -> str:
        """Start the helper ``name`` (python3 of ``image`` as root, waiting) with ``mounts`` (volume, path, rw|ro)
        and ``hosts`` (extra /etc/hosts names); a helper of that name left by an interrupted run is removed first."""
        if self._call(f"cannot inspect {name}", lambda: bool(self.client.container.exists(name)), ENGINE_HINT):
            self.remove_helper(name)
        return self._call(
            f"cannot start the backup helper {name} ({image})",
            lambda: str(
                self.client.container.run(
                    image,
                    ["-I", "-c", _PAUSE],
                    entrypoint="python3",
                    name=name,
                    detach=True,
                    user="0:0",
                    pull="never",
                    cap_drop=["ALL"],
                    cap_add=caps,
                    networks=[network],
                    add_hosts=hosts or [],
                    security_options=["no-new-privileges:true"],
                    labels={BACKUP_LABEL: self.project_name},
                    volumes=mounts,
                )
            ),
            "the app image needs python3 on its PATH (its healthcheck uses it too); deploy the stack first "
            "(`composekit up`)",
        )

    def helper_python(self, name: str, code: str, args: list[str]) -> str:
        """``python3 -I -c code args`` in the helper ``name``; its stdout."""
        return self._call(
            f"`{' '.join(args[:2])}` failed in the backup helper {name}",
            lambda: str(self.client.container.execute(name, ["python3", "-I", "-c", code, *args])),
        )

    def helper_exec(self, name: str, argv: list[str]) -> str:
        return self._call(f"`{argv[0]}` failed in {name}", lambda: str(self.client.container.execute(name, argv)))

    def copy_in(self, name: str, source: Path, target: str) -> None:
        self._call(f"cannot copy {source.name} into {name}", lambda: self.client.container.copy(source, (name, target)))

    def copy_out(self, name: str, source: str, target: Path) -> None:
        self._call(f"cannot copy {source} out of {name}", lambda: self.client.container.copy((name, source), target))

    def remove_helper(self, name: str) -> None:
        """Remove the helper and its anonymous volumes (a throwaway database's data): never a named volume."""
        self._call(
            f"cannot remove the backup helper {name}",
            lambda: self.client.container.remove(name, force=True, volumes=True),
        )

    def run_database_image(
        self,
        image: str,
        script: str,
        mounts: list[tuple[str, str, str]],
        network: str,
        envs: dict[str, str],
        summary: str,
        hint: str,
    ) -> str:
        """``bash -c script`` once in a throwaway container of the database image on ``network``; its stdout."""
        return self._call(
            summary,
            lambda: str(
                self.client.container.run(
                    image,
                    ["-c", script],
                    entrypoint="bash",
                    remove=True,
                    pull="never",
                    networks=[network],
                    envs=envs,
                    security_options=["no-new-privileges:true"],
                    labels={BACKUP_LABEL: self.project_name},
                    volumes=mounts,
                )
            ),
            hint,
        )

    def start_database(self, name: str, image: str, envs: dict[str, str], mounts: list[tuple[str, str, str]]) -> None:
        """A throwaway PostgreSQL from the database image, with no network (reached through `docker exec` only)."""
        if self._call(f"cannot inspect {name}", lambda: bool(self.client.container.exists(name)), ENGINE_HINT):
            self.remove_helper(name)
        self._call(
            f"cannot start the throwaway database {name} ({image})",
            lambda: self.client.container.run(
                image,
                name=name,
                detach=True,
                pull="never",
                networks=["none"],
                envs=envs,
                security_options=["no-new-privileges:true"],
                labels={BACKUP_LABEL: self.project_name},
                volumes=mounts,
            ),
            "images/postgres must be on the server (it is, once the stack ran)",
        )

    def stop_services(self, services: list[str]) -> None:
        with _environment(self.compose_environment):  # Compose reads the whole file, secrets included
            self._call(f"cannot stop {', '.join(services)}", lambda: self.client.compose.stop(services))

    def start_services(self, services: list[str]) -> None:
        with _environment(self.compose_environment):
            self._call(f"cannot start {', '.join(services)}", lambda: self.client.compose.start(services))

    def try_exec(self, name: str, argv: list[str]) -> tuple[bool, str]:
        """Run ``argv`` in ``name``: (whether it exited 0, what it said)."""
        try:
            return True, str(self.client.container.execute(name, argv))
        except DockerException as exc:
            return False, (_as_text(exc.stderr) or _as_text(exc.stdout)).strip()
