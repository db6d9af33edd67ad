"""Moving onto the shared edge (engine/edge_move.py), the parts without an engine: what `up` plans to carry, and the
refusal of the way back, word for word (the move itself: tests/integration/test_edge_move.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from composekit.engine import edge_move
from composekit.engine.docker import ContainerInfo
from composekit.engine.edge import EdgeState
from composekit.errors import UserError

from .test_lock import project


def container(service: str, status: str = "running") -> ContainerInfo:
    return ContainerInfo("id", f"shop-{service}-1", service, status, None, 0, 0, None, None, None, "img")


class Volumes:
    engine = None

    def __init__(self, *names: str) -> None:
        self.names = names

    def volume_mountpoint(self, name: str) -> str | None:
        return f"/var/lib/docker/volumes/{name}" if name in self.names else None


def test_a_stack_that_never_had_its_own_traefik_has_nothing_to_carry(tmp_path: Path) -> None:
    p = project(tmp_path)
    assert edge_move.move_plan(p, Volumes(), {"app": container("app")}) is None  # type: ignore[arg-type]
    old = container("traefik", "exited")
    assert edge_move.move_plan(p, Volumes(), {"traefik": old}) == edge_move.MovePlan(old, None)  # type: ignore[arg-type]
    assert edge_move.move_plan(p, Volumes("shop_acme"), {}) == edge_move.MovePlan(None, "shop_acme")  # type: ignore[arg-type]


def test_moving_back_while_the_edge_routes_the_app_is_refused_naming_the_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = EdgeState([container("traefik"), container("routes")], {}, "blog")
    monkeypatch.setattr(edge_move, "edge_docker", lambda engine: None)
    monkeypatch.setattr(edge_move, "edge_state", lambda edge: running)
    routes: dict[str, Any] = {"blog": "..."}
    monkeypatch.setattr(edge_move, "read_route_files", lambda edge: routes)
    p = project(tmp_path)
    edge_move.refuse_move_back(p, Volumes())  # type: ignore[arg-type]  # another app's edge: nothing to refuse
    routes["shop"] = "..."
    with pytest.raises(UserError) as caught:
        edge_move.refuse_move_back(p, Volumes())  # type: ignore[arg-type]
    assert str(caught.value) == (
        "edge: own: app shop is on the shared edge (composekit-edge routes it), and moving a stack off the edge is not "
        "automatic. Fix: either set edge: shared again, or `composekit down` (removes its routes from the edge; "
        "volumes are kept), `composekit edge down` once no other app uses the edge (it holds the ports), then "
        "`composekit up` (its own Traefik starts with the certificates of its own acme volume, as they were before "
        "the move; the edge's copy stays in the volume composekit-edge_acme). Nothing was changed."
    )
