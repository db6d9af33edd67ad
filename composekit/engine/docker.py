"""The one door to Docker, through python-on-whales: `Docker`, for one stack on one engine.

Every failure becomes a composekit DockerError that says what was run and what Docker answered. Docker is made of
one class per concern: the CLI call and its errors, and the engine's answers (docker_cli.py), Compose (compose.py),
images and shipping them (images.py), Swarm's raw JSON (swarm_api.py), the lock container (lock_container.py); the
containers of the stack are here.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.components.container.models import ContainerInspectResult
from python_on_whales.exceptions import DockerException

from ..errors import DockerError
from .backup_containers import BackupContainers
from .compose import COMPOSE_HINT, ComposeCommands
from .docker_cli import CONFINED_PYTHON, ENGINE_HINT, LineSink, _as_text
from .images import ImageCommands, Shipped
from .lock_container import LockContainers
from .networks import NetworkCommands
from .swarm_api import SWARM_HINT, SwarmCommands

__all__ = [
    "COMPOSE_HINT",
    "ENGINE_HINT",
    "LOG_LINES",
    "SWARM_HINT",
    "ContainerInfo",
    "Docker",
    "LineSink",
    "Shipped",
    "context_endpoint",
]


@dataclass(frozen=True)
class ContainerInfo:
    """What composekit needs to know about one container of the stack."""

    id: str
    name: str
    service: str
    status: str  # created | running | restarting | exited | ...
    health: str | None  # starting | healthy | unhealthy | None (no healthcheck)
    exit_code: int | None
    restart_count: int
    started_at: str | None
    finished_at: str | None
    pid: int | None
    image: str


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return None if text.startswith("0001-01-01") else text


def _container_info(c: ContainerInspectResult) -> ContainerInfo:
    state = c.state
    health = state.health.status if state is not None and state.health is not None else None
    return ContainerInfo(
        id=str(c.id),
        name=(c.name or "").removeprefix("/"),
        service=((c.config.labels if c.config else None) or {}).get("com.docker.compose.service", ""),
        status=str(state.status if state else None),
        health=str(health) if health else None,
        exit_code=state.exit_code if state else None,
        restart_count=c.restart_count or 0,
        started_at=_iso(state.started_at if state else None),
        finished_at=_iso(state.finished_at if state else None),
        pid=(state.pid or None) if state else None,
        image=str(c.image),
    )


def context_endpoint(name: str | None) -> tuple[str, str]:
    """(name, engine URL) of the Docker context ``name``, or of the current one when None."""
    client = DockerClient()
    argv = ["docker", "context", "inspect", *([name] if name else [])]
    try:
        found = client.context.inspect(name)
        return str(found.name), str(found.endpoints["docker"].host)
    except DockerException as exc:
        said = _as_text(exc.stderr) or _as_text(exc.stdout)
        hint = "`docker context ls` lists the contexts; --host also takes ssh://user@host[:port]"
        raise DockerError(f"cannot read the Docker context {name or '(current)'}", argv, said, hint) from None
    except (KeyError, IndexError, json.JSONDecodeError, AttributeError) as exc:
        raise DockerError(f"the Docker context {name or '(current)'} has no Docker endpoint", argv, str(exc)) from None


# How many of a failed container's last log lines an error quotes: a crashing app's restart loop prints a traceback per
# worker per run, and the run the kill interrupts may be half-way through one (30 lines once held only that partial
# traceback, not the error that ends it).
LOG_LINES = 80


class Docker(ComposeCommands, ImageCommands, SwarmCommands, LockContainers, BackupContainers, NetworkCommands):
    """Docker and Compose for one composekit stack (its compose files and project name), on one engine."""

    def volume_mountpoint(self, name: str) -> str | None:
        if not self._call(f"cannot inspect volume {name}", lambda: self.client.volume.exists(name), ENGINE_HINT):
            return None
        return self._call(
            f"cannot inspect volume {name}", lambda: str(self.client.volume.inspect(name).mountpoint), ENGINE_HINT
        )

    def run_chown(self, image: str, argv: list[str], volumes: dict[str, str]) -> str:
        """Run ``python3 argv`` once in a throwaway container of ``image`` as root with only CAP_CHOWN, no
        network, no new privileges, a read-only root filesystem, and ``volumes`` (name -> path) mounted."""
        return self._call(
            f"cannot set the owner of the volumes {', '.join(volumes)}",
            lambda: str(
                self.client.container.run(
                    image, argv, user="0:0", cap_add=["CHOWN"], volumes=list(volumes.items()), **CONFINED_PYTHON
                )
            ),
            "the app image needs python3 on its PATH (its healthcheck uses it too)",
        )

    def run_python(self, image: str, code: str, args: list[str], mounts: dict[str, str], network: str = "none") -> str:
        """``python3 -c code args`` once in a throwaway container of ``image`` on the engine's machine, with no
        capabilities (but NET_BIND_SERVICE on the host network) and ``mounts`` (source -> path, read-only): what
        doctor and up ask about a remote server."""
        return self._call(
            f"cannot run a check container of {image} on the engine's machine",
            lambda: str(
                self.client.container.run(
                    image,
                    ["-I", "-c", code, *args],
                    entrypoint="python3",
                    user="0:0",
                    remove=True,
                    cap_drop=["ALL"],
                    # binding a port below 1024 needs it, on the host network (the ports check)
                    cap_add=["NET_BIND_SERVICE"] if network == "host" else [],
                    networks=[network],
                    read_only=True,
                    security_options=["no-new-privileges:true"],
                    volumes=[(source, target, "ro") for source, target in mounts.items()],
                )
            ),
            "the check runs on images/python; pull it on the server (`docker pull IMAGE` there) or set images/python",
        )

    def stop_and_remove(self, container: str) -> None:
        """SIGTERM, then as long as the container's own stop timeout (Compose's stop_grace_period) for it to
        finish (gunicorn's graceful stop), then SIGKILL; then remove it. (python-on-whales drops an int
        ``time=``, so the container's setting is the one that applies, on purpose.)"""
        self._call(f"cannot stop container {container}", lambda: self.client.container.stop(container))
        self._call(f"cannot remove container {container}", lambda: self.client.container.remove(container))

    def container_output(self, container: str) -> tuple[str, str]:
        """What ``container`` wrote to its stdout and to its stderr, apart."""
        out: list[str] = []
        err: list[str] = []

        def read() -> None:
            chunks = self.client.container.logs(container, stream=True)
            assert not isinstance(chunks, str)  # stream=True yields (source, bytes)
            for source, raw in chunks:
                (out if source == "stdout" else err).append(_as_text(raw))

        self._call(f"cannot read the output of {container}", read)
        return "".join(out), "".join(err)

    def remove_now(self, container: str) -> None:
        self._call(f"cannot remove container {container}", lambda: self.client.container.remove(container, force=True))

    def container_logs(self, container: str, tail: int) -> str:
        return self._call(
            f"cannot read the logs of {container}", lambda: str(self.client.container.logs(container, tail=tail))
        )

    def final_logs(self, container: str, tail: int, sleep: Callable[[float], None] = time.sleep) -> str:
        """The last ``tail`` lines of a container being given up on. It is killed first (best effort: its restart
        policy then starts no new run while they are read), then read until two reads 0.3 s apart agree, for at
        most 3 s: the engine copies a run's output asynchronously, and under load the last lines of a run that
        just ended (the error the user needs) were seen to arrive after its restart was counted."""
        with contextlib.suppress(DockerException):  # a restarting or exited container refuses a kill: fine
            self.client.container.kill(container)
        logs = self.container_logs(container, tail)
        for _ in range(10):
            sleep(0.3)
            again = self.container_logs(container, tail)
            if again == logs:
                break
            logs = again
        return logs

    def containers(self) -> list[ContainerInfo]:
        """The stack's containers (stopped ones too), by service and name: one list and one inspect of them all,
        whatever their number (deploys poll this; over ssh:// each Docker call is a round trip)."""
        found = self._call(
            "cannot list the stack's containers",
            lambda: self.client.container.list(
                all=True, filters=[("label", f"com.docker.compose.project={self.project_name}")]
            ),
            ENGINE_HINT,
        )
        ids = [c.id for c in found]  # the list's IDs: reading them inspects nothing
        docs = self._call(
            "cannot inspect the stack's containers", lambda: self._inspect_existing("container", ids), ENGINE_HINT
        )
        return sorted(
            (_container_info(ContainerInspectResult(**doc)) for doc in docs), key=lambda ci: (ci.service, ci.name)
        )

    def exec(self, container: str, argv: list[str]) -> str:
        return self._call(
            f"`{' '.join(argv)}` failed in {container}",
            lambda: str(self.client.container.execute(container, argv)),
        )
