"""The self-check of a zero-downtime switch in mode: compose: the probe stream's verdict, and on a failure the
switch back to the previous release (--rollback-on-error) or the release recorded as serving."""

from __future__ import annotations

from ..config.project import Project
from ..engine.companions import deploy_processes, deploy_scheduler
from ..engine.docker import Docker, LineSink
from ..engine.releases import read_releases, record_release
from ..engine.switch import SwitchResult, switch_app
from ..engine.wait import Deadline, Progress
from ..errors import SelfCheckError
from ..render.names import app_image

__all__ = ["self_check"]


def self_check(
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
