"""Networks and volumes by name, for the shared edge (engine/edge.py): the edge's Traefik joins and leaves each
app's `web` network without a restart (`docker network connect` / `disconnect`)."""

from __future__ import annotations

import re

from .docker_cli import ENGINE_HINT, DockerCLI

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
