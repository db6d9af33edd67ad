"""`composekit down --delete-volumes` in mode: swarm, against a fake engine: the ended task containers that keep
the stack's volumes in use are removed, also when Swarm's task reaper is removing them at the same moment."""

from __future__ import annotations

from typing import Any, cast

import pytest

from composekit.engine.docker import Docker
from composekit.engine.swarm.remove import release_volumes
from composekit.engine.wait import Deadline
from composekit.errors import DockerError, HealthTimeoutError


class FakeEngine:
    """The containers of a stack, as `docker ps -a` lists them; the reaper removes one on its own after a poll."""

    def __init__(self, containers: dict[str, str], reaped: set[str], said: str) -> None:
        self.containers = dict(containers)
        self.reaped = reaped
        self.said = said
        self.removed: list[str] = []
        self.looks = 0

    def stack_containers(self, stack: str) -> list[tuple[str, str]]:
        self.looks += 1
        if self.looks > 1:  # the reaper finishes after the first look
            for name in self.reaped:
                self.containers.pop(name, None)
        return sorted(self.containers.items())

    def remove_container(self, container: str) -> None:
        if container in self.reaped:
            raise DockerError(f"cannot remove container {container}", ["docker", "rm", container], self.said)
        self.removed.append(container)
        del self.containers[container]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _deadline() -> Deadline:
    clock = Clock()
    return Deadline(60, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    "said",
    [
        "Error response from daemon: removal of container f4f3e962c873 is already in progress",
        "Error response from daemon: No such container: f4f3e962c873",
    ],
)
def test_a_container_the_task_reaper_is_removing_is_not_an_error(said: str) -> None:
    engine = FakeEngine({"f4f3e962c873": "exited", "a1b2c3d4e5f6": "exited"}, {"f4f3e962c873"}, said)
    release_volumes(cast(Docker, engine), "shop", _deadline())
    assert engine.removed == ["a1b2c3d4e5f6"]
    assert engine.containers == {}


def test_another_removal_error_is_raised() -> None:
    engine = FakeEngine({"f4f3e962c873": "exited"}, {"f4f3e962c873"}, "Error response from daemon: permission denied")
    with pytest.raises(DockerError, match="permission denied"):
        release_volumes(cast(Docker, engine), "shop", _deadline())


def test_a_container_that_never_goes_stops_the_wait_with_the_fix() -> None:
    engine: Any = FakeEngine({"f4f3e962c873": "exited"}, set(), "")
    engine.remove_container = lambda container: None  # the engine says yes but the container stays
    with pytest.raises(HealthTimeoutError, match="its volumes were not deleted"):
        release_volumes(cast(Docker, engine), "shop", _deadline())
