"""rollback(): switch back to a recorded release in mode: compose (`composekit rollback`), with up's switch and
without building or migrating anything."""

from __future__ import annotations

from ..config.project import Project
from ..engine import probes, steps
from ..engine.companions import deploy_processes, deploy_scheduler
from ..engine.docker import Docker, LineSink
from ..engine.lock import deploy_lock
from ..engine.releases import list_releases, read_last_migration, require_compose_mode, rollback_guard
from ..engine.switch import APP, SwitchResult, switch_app
from ..engine.target import Engine
from ..engine.wait import Deadline, Progress
from ..errors import UserError
from ..render.names import app_image
from ..render.stack import write_stack

__all__ = ["rollback"]


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
