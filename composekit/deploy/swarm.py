"""up() in mode: swarm, on a Swarm manager: build the release image, ship it to each node (or push it), run the
migration job, deploy the stack, wait until Swarm has converged every service, then smoke."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config.project import Project
from ..engine import probes, steps, swarm
from ..engine.docker import Docker, LineSink
from ..engine.lock import deploy_lock
from ..engine.switch import project_release_id
from ..engine.target import Engine
from ..engine.wait import Deadline, Progress
from ..render.names import APP_SERVICE, MIGRATE_SERVICE
from ..render.stack import render_stack, write_stack
from ..render.swarm import MIGRATE_FILE, STACK_FILE, TRAEFIK_SERVICE
from ..render.swarm_app import explicit_workers, swarm_warnings
from ..render.swarm_variables import deploy_variables, swarm_image
from ..verify import image_contract
from ..verify.checks import Report
from ..verify.smoke import SmokeOptions, smoke
from .result import UpResult

__all__ = ["up_swarm"]


def up_swarm(
    project: Project,
    *,
    deadline: Deadline,
    report: Progress = lambda _: None,
    on_line: LineSink | None = None,
    docker: Docker | None = None,
    smoke_wait: float | None = 90,
    smoke_options: SmokeOptions | None = None,
    on_smoke_retry: Callable[[Report], None] = lambda _: None,
    break_lock: bool = False,
    engine: Engine | None = None,
) -> UpResult:
    """`up` in mode: swarm, on a Swarm manager: render, build the release image, ship it to each node (or push it
    to the registry), run the migration job before the app is updated, deploy the stack, wait until Swarm has
    converged every service (a version Swarm rolled back is an error), wait until Traefik routes, smoke."""
    config = project.config
    docker = docker or Docker(config.name, [], engine=engine)
    docker.engine_version()
    docker.compose_version()  # the release image is built with `docker compose build`
    swarm.require_manager(docker)
    for warning in swarm_warnings(config):
        report(f"warning: {warning}")
    with deploy_lock(project, docker, "up", break_lock=break_lock, report=report):
        _deploy_swarm(project, docker, deadline, report, on_line)
    url = f"https://{config.domain}/"
    report(f"healthy: {url}")
    if smoke_wait is None:
        return UpResult(url=url, containers=[])
    opts = smoke_options or SmokeOptions.from_config(config, project.root)
    report(f"smoke-testing the deployment (retrying for up to {smoke_wait:g}s)")
    return UpResult(url=url, containers=[], smoke=smoke(opts, wait=smoke_wait, on_retry=on_smoke_retry))


def _deploy_swarm(
    project: Project, docker: Docker, deadline: Deadline, report: Progress, on_line: LineSink | None
) -> None:
    config = project.config
    stack = config.name
    traefik = swarm.traefik_here(docker, stack, TRAEFIK_SERVICE)
    steps.check_ports(project, {"traefik": traefik} if traefik is not None else {}, docker)
    rendered = render_stack(project)
    release = project_release_id(project, rendered)  # read before the render writes into the tree
    write_stack(project, rendered, warn=lambda m: report(f"warning: {m}"))
    report(f"rendered the stack into {project.out_dir}")
    image = swarm_image(config, release)
    report(f"building the app image {image} (release {release})")
    swarm.build_image(project, docker, image, on_line)
    server = "gunicorn" if explicit_workers(config) else "uvicorn"
    image_contract.check_image(project, docker, report, image=image, server=server)
    if config.registry:
        report(f"pushing {image}")
        docker.push(image)
    else:
        swarm.ship_image(docker, image, config.swarm.nodes, project.source, report)
    variables = deploy_variables(project, release)
    stack_file = project.out_dir / STACK_FILE
    app = f"{stack}_{APP_SERVICE}"
    # The nodes pull the release image from the registry with this client's login for it (`docker login`).
    auth = config.registry is not None
    if docker.service_inspect(app) is None:
        # First deploy: the networks, the socket proxy and the database come up with no app task, so the migration
        # job has its database, and the app starts only once the job completed; Traefik starts with it, once the
        # socket proxy it reads the services through runs.
        report("first deploy: creating the stack with the app and Traefik at 0 replicas")
        docker.stack_deploy(stack, stack_file, deploy_variables(project, release, replicas=0, traefik=False), auth)
        _wait_services(docker, stack, {}, deadline, report)
    if config.migrate.command is not None:
        migrate_file = project.out_dir / MIGRATE_FILE
        job = swarm.run_job(docker, stack, MIGRATE_SERVICE, migrate_file, variables, deadline, report, auth)
        report(f"migration job completed in {job.seconds:.1f}s")
    before = {str(raw["Spec"]["Name"]): raw for raw in docker.stack_services(stack)}
    report(f"deploying release {release} ({config.app.replicas} app replicas, start-first)")
    docker.stack_deploy(stack, stack_file, variables, auth)
    _wait_services(docker, stack, before, deadline, report)
    probes.wait_routed(project, deadline, docker.engine)


def _wait_services(docker: Docker, stack: str, before: dict[str, Any], deadline: Deadline, report: Progress) -> None:
    """Wait until every service of the stack (but the migration job) has converged; the app last."""
    names = sorted(str(raw["Spec"]["Name"]) for raw in docker.stack_services(stack))
    app = f"{stack}_{APP_SERVICE}"
    for name in sorted((n for n in names if n != f"{stack}_{MIGRATE_SERVICE}"), key=lambda n: n == app):
        short = name.removeprefix(f"{stack}_")
        svc = swarm.wait_converged(docker, name, before.get(name), deadline, "the app" if name == app else short)
        if svc.replicas:
            report(f"{short}: {svc.replicas}/{svc.replicas} tasks running")
