"""up() in mode: compose, what `composekit up` does: the engine steps in order (render, build, migrate, start, the
zero-downtime switch, its self-check), then smoke. A config in mode: swarm goes to up_swarm (deploy/swarm.py)."""

from __future__ import annotations

from collections.abc import Callable

from ..config.companions import SCHEDULER_SERVICE
from ..config.project import Project
from ..engine import edge, edge_move, probes, steps
from ..engine.backup import ensure_backups_volume
from ..engine.companions import deploy_processes, deploy_scheduler, put_back
from ..engine.docker import ContainerInfo, Docker, LineSink
from ..engine.edge_lock import edge_lock
from ..engine.lock import deploy_lock
from ..engine.releases import Release, distinct_release_id, read_releases, record_migration, record_release
from ..engine.switch import APP, SwitchResult, project_release_id, switch_app
from ..engine.target import Engine
from ..engine.wait import Deadline, Progress
from ..errors import ComposekitError, ImageError, UserError
from ..render.compose import FILES_SERVICE
from ..render.names import app_image
from ..render.stack import render_stack, write_stack
from ..verify import image_contract
from ..verify.checks import Report
from ..verify.smoke import SmokeOptions, smoke
from .result import UpResult
from .self_check import self_check
from .swarm import up_swarm

__all__ = ["rollback_on_error_setting", "up"]


def rollback_on_error_setting(project: Project, flag: bool | None) -> bool:
    """Whether a failed self-check switches back: the --rollback-on-error/--no-rollback-on-error flag when given,
    else releases/rollback_on_error."""
    return project.config.releases.rollback_on_error if flag is None else flag


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
    break_lock: bool = False,
    rollback_on_error: bool | None = None,
    engine: Engine | None = None,
    build_local: bool = False,
) -> UpResult:
    """Render, build, fix volume owners, migrate, start, wait until Traefik and the app are healthy and routed,
    then smoke-test the deployment from outside, retrying for up to ``smoke_wait`` seconds while Traefik obtains
    its certificate (``smoke_wait=None`` skips smoke).

    ``timeout`` bounds the engine part: the migration, the health wait and the routing wait share one deadline.
    A failed step raises (a ComposekitError); a failed smoke does not (the stack is up): see ``UpResult.passed``.
    ``smoke_options`` default to the config's (SmokeOptions.from_config). The deploy holds the stack's lock on
    the engine (engine.lock); ``break_lock`` first removes one left by a deploy that died. ``rollback_on_error``
    None follows releases/rollback_on_error.
    """
    # Before anything changes: the probes must reach the server.
    probes.check_probe_route(project, docker.engine if docker is not None else engine)
    deadline = deadline or Deadline(timeout)
    if project.config.mode == "swarm":
        if build_local or rollback_on_error:
            option = "--build-local" if build_local else "--rollback-on-error"
            raise UserError(
                f"up {option} applies to mode: compose only: in mode: swarm composekit builds on the manager and "
                "ships the image to the nodes, and Swarm rolls a failed update back by itself"
            )
        return up_swarm(
            project,
            deadline=deadline,
            report=report,
            on_line=on_line,
            docker=docker,
            smoke_wait=smoke_wait,
            smoke_options=smoke_options,
            on_smoke_retry=on_smoke_retry,
            break_lock=break_lock,
            engine=engine,
        )
    docker = docker or steps.docker_for(project, engine)
    docker.compose_environment.update(steps.compose_secrets(project))
    docker.engine_version()
    docker.compose_version()
    with deploy_lock(project, docker, "up", break_lock=break_lock, report=report):
        back = rollback_on_error_setting(project, rollback_on_error)
        containers, switched = _deploy(project, docker, deadline, report, on_line, back, build_local)
    url = f"https://{project.config.domain}/"
    if switched.changed:
        report(f"release {switched.release} serving at {url}; switch took {switched.switch_seconds:.1f}s")
    else:
        report(f"healthy: {url}")
    if smoke_wait is None:
        return UpResult(url=url, containers=containers, switch=switched)
    opts = smoke_options or SmokeOptions.from_config(project.config, project.root)
    report(f"smoke-testing the deployment (retrying for up to {smoke_wait:g}s)")
    return UpResult(
        url=url, containers=containers, smoke=smoke(opts, wait=smoke_wait, on_retry=on_smoke_retry), switch=switched
    )


def _deploy(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
    rollback_on_error: bool = False,
    build_local: bool = False,
) -> tuple[list[ContainerInfo], SwitchResult]:
    before = steps.by_service(docker.containers())
    shared = project.config.edge == "shared"
    move: edge_move.MovePlan | None = None
    if shared:
        edge.preflight(project, docker, before)  # settings, domains, ports: before anything changes
        move = edge_move.move_plan(project, docker, before)  # what edge: own left: its Traefik, its certificates
    else:
        edge_move.refuse_move_back(project, docker)
        steps.check_ports(project, before, docker)
    rendered = render_stack(project)
    release = project_release_id(project, rendered)  # read before the render writes into the tree
    write_stack(project, rendered, warn=lambda m: report(f"warning: {m}"))
    report(f"rendered the stack into {project.out_dir}")
    if build_local:
        # Built by the engine the Docker CLI uses here by default, then shipped without a registry.
        here = steps.docker_for(project)
        report(f"building the app image on this machine (--build-local), release {release}")
        here.build(on_line)
        image = app_image(project.config)
        shipped = here.ship_image(image, docker)
        report(f"shipped {image} to {docker.engine.describe()}: {shipped.describe()}")
    else:
        report(f"building the app image (release {release})")
        docker.build(on_line)
    try:
        image_contract.check_image(project, docker, report)
    except ImageError:
        serving = before.get(APP)
        if serving is not None:
            docker.tag(serving.image, app_image(project.config))  # :latest stays the image that serves
        raise
    claim = None
    if shared:
        # After the build, before anything of the stack changes (a refused claim leaves nothing of it started).
        claim = _onto_edge(project, docker, move, deadline, report, on_line)
    try:
        return _roll_out(project, docker, deadline, report, on_line, rollback_on_error, before, release)
    except ComposekitError:
        if claim is not None:
            _give_back(project, docker, claim, report)
        raise


def _give_back(project: Project, docker: Docker, claim: edge.Claim, report: Progress) -> None:
    """A failed `up` gives back the names it claimed on the edge (edge.give_back); a failure to do so is reported,
    never raised over the `up`'s own error."""
    try:
        edge.give_back(project, docker, claim, report)
    except ComposekitError as exc:
        first = str(exc).splitlines()[0]
        names = ", ".join(claim.names)
        report(f"warning: could not give back {names} on the shared edge ({first}); `composekit down` does")


def _roll_out(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
    rollback_on_error: bool,
    before: dict[str, ContainerInfo],
    release: str,
) -> tuple[list[ContainerInfo], SwitchResult]:
    """Everything of `up` after the build (and the claim on the edge): volume owners, the files, the migration, the
    services beside the app, the processes, the switch, its self-check, the record of the release."""
    shared = project.config.edge == "shared"
    steps.fix_volume_owners(project, docker, report)
    ensure_backups_volume(project, docker)
    steps.deliver_files(docker, deadline, report, on_line)
    migration: str | None = None
    if project.config.migrate.command is not None:
        # On the NEW image, before the app changes: a failing migration leaves the running release serving.
        steps.migrate(project, docker, before, deadline, report, on_line)
        migration = steps.read_migration_state(project, docker, deadline, report)
    report("starting Traefik and the services beside the app")
    # --no-deps: the files and the migration already ran; the app is switched by switch_app, never recreated
    # in place.
    # The processes are started beside their old containers below (deploy_processes), never recreated in place.
    # The scheduler is replaced stop-first below (deploy_scheduler).
    own = (FILES_SERVICE, steps.MIGRATE, APP, SCHEDULER_SERVICE, *project.config.processes)
    docker.up([name for name in docker.services() if name not in own], dependencies=False, on_line=on_line)
    if shared:
        steps.wait_healthy(docker, sorted(project.config.accessories), deadline)
    else:
        steps.wait_healthy(docker, ["traefik", *sorted(project.config.accessories)], deadline)
    recorded = read_releases(docker)
    if any(r.id == release for r in recorded):
        distinct = distinct_release_id(release, docker.image_id(app_image(project.config)), recorded)
        if distinct != release:
            report(f"release {release} is recorded with another image: this build is release {distinct}")
            release = distinct
    if project.config.migrate.command is not None:
        # Before the switch: should this release never go live, the database is still where its migration left it.
        record_migration(docker, release, migration)
    serving = before.get(APP)
    moved = bool(
        deploy_processes(project, docker, deadline, release, report, on_line, serving.image if serving else None)
    )
    moved = deploy_scheduler(project, docker, release, report, on_line) or moved
    serving_release = _serving_release(recorded, serving.image) if moved and serving is not None else None
    switched = _switch_companions_too(project, docker, deadline, release, report, on_line, serving_release)
    self_check(project, docker, deadline, switched, report, on_line, rollback_on_error, migration)
    probes.wait_routed(project, deadline, docker.engine)
    if switched.changed:
        for tag in record_release(project, docker, release, switched.config_hash, migration=migration):
            report(f"pruned {tag} (releases/keep is {project.config.releases.keep})")
    containers = docker.containers()
    return containers, switched


def _onto_edge(
    project: Project,
    docker: Docker,
    move: edge_move.MovePlan | None,
    deadline: Deadline,
    report: Progress,
    on_line: LineSink | None,
) -> edge.Claim | None:
    """The app's place on the shared edge, under the edge lock when anything is to change there: its own Traefik's
    ports and certificates moved onto the edge (edge: own before), the edge created when none runs (two first `up`s:
    one creates it), and the names the app routes that its routes file there lacks claimed (checked against every
    other app's file and written at once: of two `up`s claiming one name, exactly one gets it). The lock is held for
    those steps only (seconds; creating the edge waits for its Traefik's health): never across the build, the
    migration or the app's health wait. An `up` that claims nothing on a running edge takes no lock. Returns what it
    claimed (None: nothing), for the `up` to give back should it fail."""
    edge_docker = edge.edge_docker(docker.engine)
    running = edge.edge_state(edge_docker).running
    if move is None and running and not edge.claim_needed(project, edge_docker):
        return None
    with edge_lock(project, docker, "up", report=report):
        took = deadline.clock()
        if move is not None:
            # Before any `docker compose up` of the stack: it would remove the own Traefik (an orphan now) at once.
            edge_move.move_onto_edge(project, docker, move, deadline, report, on_line)
        now = edge.edge_state(edge_docker)
        if now.running and not running:
            # Another `up` created the edge while this one built or waited: its settings must be this app's too
            # (checked before the build against no edge at all), else refused as against any running edge.
            edge.refuse_other_settings(project, now)
        if not now.running or (not running and move is None):
            # None runs (an `edge down` may have removed it while this waited), or another `up` created one while
            # this waited (ensure_edge brings it to this app's definition). The edge joins the app's network when
            # the switch first routes to it (routes_volume.write_routes).
            edge.ensure_edge(project, docker.engine, deadline, report, on_line)
        claim = edge.claim_domains(project, docker, report)
        report(f"releasing the edge lock (held {deadline.clock() - took:.1f} s)")
    return claim


def _serving_release(recorded: list[Release], image: str) -> tuple[str, str]:
    """The serving release's (id, image id); "previous" when its image is not recorded."""
    return next((r.id for r in reversed(recorded) if r.image == image), "previous"), image


def _switch_companions_too(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    release: str,
    report: Progress,
    on_line: LineSink | None,
    serving: tuple[str, str] | None,
) -> SwitchResult:
    """switch_app; when it fails, the release that was serving still serves, so the processes and the scheduler,
    moved to the new image before the switch, go back to ``serving`` (its id, its image id; None: they did not
    move) and run its code again. The switch's error is raised either way."""
    try:
        return switch_app(project, docker, deadline, release, report, on_line)
    except ComposekitError:
        if serving is not None:
            try:
                put_back(project, docker, deadline, serving[1], serving[0], report, on_line)
            except ComposekitError as exc:
                report(f"warning: the processes and the scheduler stay on release {release}: {exc}")
        raise
