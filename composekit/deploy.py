"""The library's up(): the whole deploy as `composekit up` does it, engine steps then smoke.

down() and status() are the engine's (composekit.engine.steps), re-exported here for the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config.companions import SCHEDULER_SERVICE
from .config.project import Project
from .engine import edge, edge_move, probes, steps, swarm
from .engine.backup import ensure_backups_volume
from .engine.companions import deploy_processes, deploy_scheduler, put_back
from .engine.docker import ContainerInfo, Docker, LineSink
from .engine.edge_lock import edge_lock
from .engine.lock import deploy_lock
from .engine.releases import (
    Release,
    ReleaseRow,
    distinct_release_id,
    list_releases,
    read_last_migration,
    read_releases,
    record_migration,
    record_release,
    require_compose_mode,
    rollback_guard,
)
from .engine.status import status
from .engine.steps import down
from .engine.switch import APP, SwitchResult, project_release_id, switch_app
from .engine.target import Engine
from .engine.wait import Deadline, Progress
from .errors import ComposekitError, SelfCheckError, UserError
from .render.compose import FILES_SERVICE
from .render.names import APP_SERVICE, MIGRATE_SERVICE, app_image
from .render.stack import render_stack, write_stack
from .render.swarm import MIGRATE_FILE, STACK_FILE, TRAEFIK_SERVICE
from .render.swarm_app import swarm_warnings
from .render.swarm_variables import deploy_variables, swarm_image
from .verify.checks import Report
from .verify.smoke import SmokeOptions, smoke

__all__ = ["ReleaseRow", "UpResult", "down", "list_releases", "rollback", "rollback_on_error_setting", "status", "up"]


@dataclass(frozen=True)
class UpResult:
    """``smoke`` is the last smoke report (None when up ran with ``smoke=False``)."""

    url: str
    containers: list[ContainerInfo]
    smoke: Report | None = None
    switch: SwitchResult | None = None

    @property
    def passed(self) -> bool:
        """The stack is healthy and routed (up raises otherwise) and smoke, when it ran, passed."""
        return self.smoke is None or self.smoke.passed


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


def _self_check(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    switched: SwitchResult,
    report: Progress,
    on_line: LineSink | None,
    rollback_on_error: bool,
    migration: str | None = None,
) -> None:
    """Report the probe stream of the switch; a failed probe is an error, switched back with ``rollback_on_error``.
    ``migration``: the state the new release's migration left (it is not reversed by switching back)."""
    probes = switched.probes
    if probes is None:
        return
    report(f"self-check: {probes.summary()}")
    if probes.passed:
        return
    first = f" (first: {'; '.join(probes.failures)})" if probes.failures else ""
    what = f"the self-check failed: {probes.summary()}{first}"
    if rollback_on_error and switched.previous_image is not None:
        found = next((r for r in read_releases(docker) if r.image == switched.previous_image), None)
        previous = found.id if found is not None else "previous"
        stays = ""
        if found is not None and None not in (migration, found.migration) and migration != found.migration:
            stays = (
                f"; the database stays at the new migration state {migration} (release {previous} was deployed at "
                f"{found.migration}): switching back does not reverse the migration"
            )
        report(f"switching back to the previous release (--rollback-on-error){stays}")
        docker.tag(switched.previous_image, app_image(project.config))
        deploy_processes(project, docker, deadline, previous, report, on_line)
        deploy_scheduler(project, docker, previous, report, on_line)
        back = switch_app(project, docker, deadline, previous, report, on_line)
        raise SelfCheckError(
            f"{what}; switched back to release {previous} ({', '.join(back.serving)}) because of --rollback-on-error"
            f"{stays}"
        )
    record_release(project, docker, switched.release, switched.config_hash, migration=migration)
    raise SelfCheckError(
        f"{what}; release {switched.release} is serving: `composekit rollback` switches back "
        "(`up --rollback-on-error` does it by itself)"
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
    if shared:
        # After the build, before anything of the stack changes (a refused claim leaves nothing of it started).
        _onto_edge(project, docker, move, deadline, report, on_line)
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
    _self_check(project, docker, deadline, switched, report, on_line, rollback_on_error, migration)
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
) -> None:
    """The app's place on the shared edge, under the edge lock when anything is to change there: its own Traefik's
    ports and certificates moved onto the edge (edge: own before), the edge created when none runs (two first `up`s:
    one creates it), and the names the app routes that its routes file there lacks claimed (checked against every
    other app's file and written at once: of two `up`s claiming one name, exactly one gets it). The lock is held for
    those steps only (seconds; creating the edge waits for its Traefik's health): never across the build, the
    migration or the app's health wait. An `up` that claims nothing on a running edge takes no lock."""
    edge_docker = edge.edge_docker(docker.engine)
    running = edge.edge_state(edge_docker).running
    if move is None and running and not edge.claim_needed(project, edge_docker):
        return
    with edge_lock(project, docker, "up", report=report):
        took = deadline.clock()
        if move is not None:
            # Before any `docker compose up` of the stack: it would remove the own Traefik (an orphan now) at once.
            edge_move.move_onto_edge(project, docker, move, deadline, report, on_line)
        if not edge.edge_state(edge_docker).running or (not running and move is None):
            # None runs (an `edge down` may have removed it while this waited), or another `up` created one while
            # this waited (ensure_edge brings it to this app's definition). The edge joins the app's network when
            # the switch first routes to it (routes_volume.write_routes).
            edge.ensure_edge(project, docker.engine, deadline, report, on_line)
        edge.claim_domains(project, docker, report)
        report(f"releasing the edge lock (held {deadline.clock() - took:.1f} s)")


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


def rollback(
    project: Project,
    target: str | None = None,
    *,
    timeout: float = 300,
    report: Progress = lambda _: None,
    on_line: LineSink | None = None,
    break_lock: bool = False,
    docker: Docker | None = None,
    engine: Engine | None = None,
    yes: bool = False,
) -> SwitchResult:
    """Switch back to ``target`` (a release id or a unique prefix of one; default: the newest release before the
    serving one) with the same zero-downtime switch as `up`, without building or migrating anything.

    Migrations are not reversed: when the database was migrated since ``target`` (its recorded migration state
    differs from the one the last migration composekit ran left, or else the newest release's), the rollback is
    refused unless ``yes``, and always when migrate/backward_compatible is false (releases.rollback_guard)."""
    require_compose_mode(project, "rollback")
    probes.check_probe_route(project, docker.engine if docker is not None else engine)
    deadline = Deadline(timeout)
    docker = docker or steps.docker_for(project, engine)
    docker.compose_environment.update(steps.compose_secrets(project))
    docker.engine_version()
    with deploy_lock(project, docker, "rollback", break_lock=break_lock, report=report):
        rows = list_releases(project, docker)
        current = next((i for i, r in enumerate(rows) if r.current), None)
        if target is None:
            before = [r for r in rows[: current if current is not None else len(rows)] if not r.current]
            if not before:
                raise UserError("there is no release before the serving one to roll back to (`composekit releases`)")
            chosen = before[-1]
        else:
            matches = [r for r in rows if r.release.id.startswith(target)]
            if len(matches) != 1:
                known = ", ".join(r.release.id for r in rows) or "none"
                raise UserError(f"release {target!r} matches {len(matches)} of the recorded releases ({known})")
            chosen = matches[0]
        if chosen.current:
            raise UserError(f"release {chosen.release.id} is already serving")
        if not docker.image_exists(chosen.tag):
            raise UserError(f"the image of release {chosen.release.id} ({chosen.tag}) is no longer on the engine")
        migrate = project.config.migrate
        guard = rollback_guard(
            chosen.release,
            rows[-1].release,  # the newest recorded release migrated last: a rollback migrates nothing
            migrates=migrate.command is not None,
            backward_compatible=migrate.backward_compatible,
            yes=yes,
            last=read_last_migration(docker),  # also a migration whose release never went live
        )
        if not guard.proceed:
            raise UserError(guard.message or "refused")
        if guard.message is not None:
            report(f"warning: {guard.message}")
        write_stack(project, warn=lambda m: report(f"warning: {m}"))
        report(f"rolling back to release {chosen.release.id} (no build, no migration)")
        serving = next((c.image for c in docker.containers() if c.service == APP and c.status == "running"), None)
        docker.tag(chosen.tag, app_image(project.config))
        deploy_processes(project, docker, deadline, chosen.release.id, report, on_line, serving)
        deploy_scheduler(project, docker, chosen.release.id, report, on_line)
        switched = switch_app(project, docker, deadline, chosen.release.id, report, on_line)
        probes.wait_routed(project, deadline, docker.engine)
        return switched
