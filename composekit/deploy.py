"""The library's up(): the whole deploy as `composekit up` does it, engine steps then smoke.

down() and status() are the engine's (composekit.engine.steps), re-exported here for the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .config.project import Project
from .engine import steps
from .engine.docker import ContainerInfo, Docker, LineSink
from .engine.steps import down, status
from .engine.target import Engine
from .engine.wait import Deadline
from .render.compose import app_image
from .render.stack import write_stack
from .verify.checks import Report
from .verify.smoke import SmokeOptions, smoke

__all__ = ["UpResult", "down", "status", "up"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class UpResult:
    """``smoke`` is the last smoke report (None when up ran with ``smoke=False``)."""

    url: str
    containers: list[ContainerInfo]
    smoke: Report | None = None

    @property
    def passed(self) -> bool:
        """The stack is healthy and routed (up raises otherwise) and smoke, when it ran, passed."""
        return self.smoke is None or self.smoke.passed


def up(
    project: Project,
    *,
    timeout: float = 300,
    report: Progress = lambda _: None,
    on_line: LineSink | None = None,
    docker: Docker | None = None,
    deadline: Deadline | None = None,
    smoke_wait: float | None = 90,
    smoke_options: SmokeOptions | None = None,
    on_smoke_retry: Callable[[Report], None] = lambda _: None,
    engine: Engine | None = None,
    build_local: bool = False,
) -> UpResult:
    """Render, build, fix volume owners, migrate, start, wait until Traefik and the app are healthy and routed,
    then smoke-test the deployment from outside, retrying for up to ``smoke_wait`` seconds while Traefik obtains
    its certificate (``smoke_wait=None`` skips smoke).

    ``timeout`` bounds the engine part: the migration, the health wait and the routing wait share one deadline.
    A failed step raises (a ComposekitError); a failed smoke does not (the stack is up): see ``UpResult.passed``.
    ``smoke_options`` default to the config's (SmokeOptions.from_config).
    """
    deadline = deadline or Deadline(timeout)
    docker = docker or steps.docker_for(project, engine)
    docker.compose_environment.update(steps.compose_secrets(project))
    docker.engine_version()
    docker.compose_version()
    before = steps.by_service(docker.containers())
    steps.check_ports(project, before, docker)
    write_stack(project)
    report(f"rendered the stack into {project.out_dir}")
    if build_local:
        # Built by the engine the Docker CLI uses here by default, then shipped without a registry.
        here = steps.docker_for(project)
        report("building the app image on this machine (--build-local)")
        here.build(on_line)
        image = app_image(project.config)
        sent = here.ship_image(image, docker)
        report(f"shipped {image} to {docker.engine.describe()}: {sent:,} bytes sent")
    else:
        report("building the app image")
        docker.build(on_line)
    steps.fix_volume_owners(project, docker, report)
    if project.config.migrate.command is not None:
        steps.migrate(project, docker, before, deadline, report, on_line)
        report("starting the stack")
        others = [name for name in docker.services() if name != steps.MIGRATE]
        # --no-deps: the migration already ran; compose must not re-run it or touch what it depends on.
        docker.up(others, dependencies=False, on_line=on_line)
    else:
        report("starting the stack")
        docker.up(on_line=on_line)
    report("waiting for Traefik and the app to be healthy")
    containers = steps.wait_healthy(docker, ["traefik", "app"], deadline)
    steps.wait_routed(project, deadline, docker.engine)
    url = f"https://{project.config.domain}/"
    report(f"healthy: {url}")
    if smoke_wait is None:
        return UpResult(url=url, containers=containers)
    opts = smoke_options or SmokeOptions.from_config(project.config, project.root)
    report(f"smoke-testing the deployment (retrying for up to {smoke_wait:g}s)")
    return UpResult(url=url, containers=containers, smoke=smoke(opts, wait=smoke_wait, on_retry=on_smoke_retry))
