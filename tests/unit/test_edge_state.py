"""edge_state against a fake engine: a Traefik that an upgrade removes between the listing and its inspection (CI:
an own-edge app's `up` failed with "No such container: composekit-edge-traefik-1" while another module upgraded the
shared edge) is looked at again; a Traefik still listed whose inspection fails is an error."""

from __future__ import annotations

from typing import cast

import pytest

from composekit.engine.docker import ContainerInfo, Docker
from composekit.engine.edge import edge_state
from composekit.errors import DockerError


def _traefik(name: str, started: str) -> ContainerInfo:
    return ContainerInfo(name, name, "traefik", "running", "healthy", None, 0, started, None, 1, "traefik:v3")


class FakeEdge:
    def __init__(self, listings: list[list[ContainerInfo]], gone: set[str]) -> None:
        self.listings = listings
        self.gone = gone

    def containers(self) -> list[ContainerInfo]:
        return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]

    def container_labels(self, name: str) -> dict[str, str]:
        if name in self.gone:
            raise DockerError(f"cannot inspect container {name}", ["docker", "inspect", name], "No such container")
        return {"composekit.edge.created-by": "blog"}


def test_a_traefik_removed_between_listing_and_inspection_is_looked_at_again() -> None:
    old, new = _traefik("composekit-edge-traefik-1", "1"), _traefik("composekit-edge-traefik-2", "2")
    edge = FakeEdge([[old, new], [new], [new]], {old.name})
    state = edge_state(cast(Docker, edge))
    assert state.traefik == new


def test_a_listed_traefik_that_cannot_be_inspected_is_an_error() -> None:
    old = _traefik("composekit-edge-traefik-1", "1")
    with pytest.raises(DockerError, match="cannot inspect container composekit-edge-traefik-1"):
        edge_state(cast(Docker, FakeEdge([[old]], {old.name})))
