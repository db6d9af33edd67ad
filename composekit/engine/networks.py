"""Networks and volumes by name, for the shared edge (engine/edge.py): the edge's Traefik joins and leaves each
app's `web` network without a restart (`docker network connect` / `disconnect`)."""

from __future__ import annotations

import re

from .docker_cli import CONFINED_PYTHON, ENGINE_HINT, DockerCLI, LineSink

__all__ = ["NetworkCommands"]


class NetworkCommands(DockerCLI):
    def container_networks(self, container: str) -> list[str]:
        """The networks ``container`` is attached to, by name."""
        return self._call(
            f"cannot inspect container {container}",
            lambda: sorted((self.client.container.inspect(container).network_settings.networks or {}).keys()),
            ENGINE_HINT,
        )

    def container_addresses(self, container: str) -> dict[str, str]:
        """The networks ``container`` is attached to, by name, with its IPv4 address on each."""
        return self._call(
            f"cannot inspect container {container}",
            lambda: {
                name: str(net.ip_address or "")
                for name, net in (self.client.container.inspect(container).network_settings.networks or {}).items()
            },
            ENGINE_HINT,
        )

    def network_connect(self, network: str, container: str, ip: str | None = None) -> None:
        self._call(
            f"cannot connect {container} to network {network}",
            lambda: self.client.network.connect(network, container, ip=ip),
            f"`docker network inspect {network}` shows who holds the address {ip}" if ip else "",
        )

    def network_disconnect(self, network: str, container: str) -> None:
        self._call(
            f"cannot disconnect {container} from network {network}",
            lambda: self.client.network.disconnect(network, container, force=True),
        )

    def kernel_migrates_requests(self) -> bool:
        """Whether the engine's kernel has net.ipv4.tcp_migrate_req (Linux 5.14+), from `docker info`."""
        version = self._call("cannot read `docker info`", lambda: str(self.client.system.info().kernel_version or ""))
        found = re.match(r"(\d+)\.(\d+)", version)
        return found is not None and (int(found[1]), int(found[2])) >= (5, 14)

    def network_exists(self, network: str) -> bool:
        return self._call(f"cannot inspect network {network}", lambda: self.client.network.exists(network), ENGINE_HINT)

    def remove_network(self, network: str) -> None:
        self._call(f"cannot remove network {network}", lambda: self.client.network.remove(network))

    def remove_volume(self, volume: str) -> None:
        self._call(f"cannot remove volume {volume}", lambda: self.client.volume.remove(volume))

    def stop_container(self, container: str) -> None:
        """SIGTERM, then the container's own stop timeout, then SIGKILL; the container stays (start_container)."""
        self._call(f"cannot stop container {container}", lambda: self.client.container.stop(container))

    def start_container(self, container: str) -> None:
        self._call(f"cannot start container {container}", lambda: self.client.container.start(container))

    def compose_create(self, on_line: LineSink | None = None) -> None:
        """`docker compose up --no-start`: the project's network, volumes and containers, none started."""
        self._stream(
            "`docker compose up --no-start` failed",
            lambda: self.client.compose.up(start=False, color=False, stream_logs=True),
            on_line,
        )

    def compose_start(self, services: list[str]) -> None:
        """`docker compose start`: unlike `docker start`, it first copies the configs with `content:` into the
        containers (Compose does so only when it starts one; a container it only created has none)."""
        self._stream(
            "`docker compose start` failed", lambda: self.client.compose.start(services, stream_logs=True), None
        )

    def run_python_in_volumes(self, image: str, code: str, args: list[str], volumes: dict[str, tuple[str, str]]) -> str:
        """``python3 -I -c code args`` once in a throwaway container of ``image`` as root with no capability, no
        network, a read-only root and ``volumes`` (name -> (path, "ro" or "rw")): what moves ACME storage."""
        return self._call(
            f"cannot run a helper container of {image} on the volumes {', '.join(volumes)}",
            lambda: str(
                self.client.container.run(
                    image,
                    ["-I", "-c", code, *args],
                    user="0:0",
                    volumes=[(name, path, mode) for name, (path, mode) in volumes.items()],
                    **CONFINED_PYTHON,
                )
            ),
            "the helper runs on images/python (the image of the routes containers); it must be on the engine",
        )
