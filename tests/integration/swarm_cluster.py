"""The `swarm_cluster` fixture: a real two-node Docker Swarm (scripts/swarm.sh) for the swarm modules.

Use it from a test module marked `swarm` (tests/integration/lanes.py) with
`from .swarm_cluster import swarm_cluster  # noqa: F401`. The main engine is the manager; node2 is a second dockerd in
the network namespace ck-node2, a worker. The swarm is started and left only while every lane's lock is held (its
init and leave disturb other stacks' DNS): in a parallel run, by the xdist controller before the workers start and
after they end (conftest.py); otherwise by the first swarm module that finds it down (holding lane 0's lock, it takes
the other lanes' for the start) and, in a plain run, by `swarm_session` at the end of the session. Tests remove the
services and stacks they create themselves.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from .conftest import REPO, TestEnv, module_kind
from .lanes import LANES, hold_exactly

SWARM_SH = REPO / "scripts" / "swarm.sh"
NODE2_HOST = "unix:///run/ck-node2.sock"


def swarm_script(command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run `scripts/swarm.sh COMMAND` (the caller holds the host ports lock: start checks it)."""
    return subprocess.run(["bash", str(SWARM_SH), command], capture_output=True, text=True, timeout=timeout)


def docker(*args: str, host: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`docker [-H host] ARGS`, checked: a failure raises with the command's stderr."""
    cmd = ["docker", *(["-H", host] if host else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result


@dataclass(frozen=True)
class SwarmCluster:
    manager_host: str | None  # the main engine's DOCKER_HOST (None: the default socket)
    node2_host: str
    manager_hostname: str  # as in `docker node ls`
    node2_hostname: str

    def manager(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return docker(*args, host=self.manager_host, timeout=timeout)

    def node2(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return docker(*args, host=self.node2_host, timeout=timeout)

    def node2_image_id(self, image: str) -> str:
        """The ID of ``image`` on node2's engine; "" when node2 does not have it."""
        found = subprocess.run(
            ["docker", "-H", self.node2_host, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return found.stdout.strip() if found.returncode == 0 else ""

    def give_node2(self, image: str) -> None:
        """Make node2 hold the main engine's ``image`` (`docker save | docker -H node2 load`: no registry here)
        unless it already has the same image; node2 keeps its images between runs."""
        wanted = self.manager("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        if self.node2_image_id(image) == wanted:
            return
        manager = ["docker", *(["-H", self.manager_host] if self.manager_host else [])]
        save = subprocess.Popen([*manager, "save", image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        try:
            load = subprocess.run(
                ["docker", "-H", self.node2_host, "load"],
                stdin=save.stdout,
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            save.stdout.close()
            saved = save.wait(timeout=60)
        assert (saved, load.returncode) == (0, 0), load.stderr
        assert self.node2_image_id(image) == wanted

    def empty_node2_but(self, image: str) -> None:
        """Leave node2 with no container and no image but the main engine's ``image`` (when node2 has that very
        image): what `docker image prune --all` would leave after ``give_node2(image)``, without sending node2 the
        image again (a `docker save | docker load` of the base image, the slowest step of a swarm module's setup)."""
        self.node2("container", "prune", "--force")
        keep = self.manager("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        others = set(self.node2("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split()) - {keep}
        for other in sorted(others):  # unchecked: removing one may have removed another already
            subprocess.run(
                ["docker", "-H", self.node2_host, "image", "rm", "--force", other], capture_output=True, timeout=120
            )
        self.node2("image", "prune", "--force")  # layers of the removed images that nothing references now
        left = set(self.node2("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split())
        assert left <= {keep}, f"node2 still has images other than {image}: {sorted(left - {keep})}"

    def stop_node2(self) -> None:
        """Stop node2's dockerd only (a node failure): the swarm, the namespace and node2's swarm state stay."""
        _checked(swarm_script("stop-node2", timeout=90), "stop-node2")

    def start_node2(self) -> None:
        """Start node2's dockerd again; returns once `docker node ls` shows both nodes Ready."""
        _checked(swarm_script("start-node2", timeout=150), "start-node2")


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise AssertionError(f"scripts/swarm.sh {what} exited {result.returncode}:\n{result.stderr.strip()[-3000:]}")


def _cannot_start(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the two-node test swarm did not start in CI: {reason}", pytrace=False)
    pytest.skip(f"the two-node test swarm did not start: {reason}")


def main_engine_swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


def swarm_is_up() -> bool:
    """`scripts/swarm.sh status`: the two-node test swarm is up, both nodes Ready."""
    return swarm_script("status", timeout=60).returncode == 0


def leave_swarm() -> None:
    """`scripts/swarm.sh stop`, checked: the main engine out of the swarm, node2, its veth and namespace gone. The
    caller holds every lane's lock."""
    _checked(swarm_script("stop"), "stop")
    state = main_engine_swarm_state()
    assert state == "inactive", f"the main engine is still in a swarm after scripts/swarm.sh stop: {state}"


@pytest.fixture(scope="module")
def swarm_cluster(
    request: pytest.FixtureRequest, host_ports: None, testenv: TestEnv, swarm_session: list[bool]
) -> SwarmCluster:
    """The two-node swarm, for a swarm module (marked `swarm`: it holds lane 0's lock, in the swarm
    work unit). Up already in a parallel run (the xdist controller started it); found down (a plain run, or an
    exclusive module left it), it is started with the other lanes' locks taken too, so that no other module runs
    while the engine joins the swarm. `scripts/swarm.sh start` also repairs a swarm an earlier module left broken
    (node2 stopped by a failed test, say)."""
    if module_kind(request.module) != "swarm":
        pytest.fail(
            f"{request.module.__name__} uses the test swarm but is not marked `swarm`: the swarm "
            "may be started and used only by those modules (lane 0, the swarm work unit)",
            pytrace=False,
        )
    with ExitStack() as others:
        if not swarm_is_up():
            others.enter_context(hold_exactly(LANES[1:]))  # lane 0 is this module's already
        started = swarm_script("start")  # a no-op on a healthy swarm
    swarm_session.append(True)  # also after a failed start: stop undoes what start recorded
    if started.returncode != 0:
        _cannot_start(f"scripts/swarm.sh start exited {started.returncode}: {started.stderr.strip()[-1500:]}")
    nodes = docker("node", "ls", "--format", "{{.Self}} {{.Hostname}}").stdout.split()
    hostnames = dict(zip(nodes[::2], nodes[1::2], strict=True))
    return SwarmCluster(
        manager_host=os.environ.get("DOCKER_HOST") or None,
        node2_host=NODE2_HOST,
        manager_hostname=hostnames["true"],
        node2_hostname=hostnames["false"],
    )
