"""The app's processes in a deploy (mode: compose): each release starts them on the new image beside the old ones, after
the migration and before the web switch; once every new container is healthy, the old ones get SIGTERM and their stop
grace (stop_grace_period) to finish the job they hold. A process that does not turn healthy fails the deploy before
the switch: its new containers are removed, the old ones never stopped, so the old release keeps serving and working.
The scheduler of schedules/ is the opposite: stop-first (deploy_scheduler), never two at once. Accessories need
nothing here: Compose recreates a service only when its definition changed, which an app deploy never does to theirs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..config.companions import SCHEDULER_SERVICE
from ..config.project import Project
from ..errors import DockerError, HealthTimeoutError
from ..render.names import app_image
from .docker import LOG_LINES, ContainerInfo, Docker, LineSink
from .log_hints import quote_log, read_only_hint
from .wait import Deadline, Poll, Progress

__all__ = ["PUT_BACK_SECONDS", "SETTLE_SECONDS", "ProcessChange", "deploy_processes", "deploy_scheduler", "put_back"]

# A process without health_command counts as up once it ran this long without exiting or restarting.
SETTLE_SECONDS = 5.0
# At least this long for putting the processes back after a failed switch (the deploy's own deadline may be spent).
PUT_BACK_SECONDS = 120.0


@dataclass(frozen=True)
class ProcessChange:
    name: str
    old: list[ContainerInfo]
    new: list[ContainerInfo]


def _of(docker: Docker, service: str) -> list[ContainerInfo]:
    return [c for c in docker.containers() if c.service == service]


def _current(docker: Docker, name: str, replicas: int, image_id: str) -> list[ContainerInfo] | None:
    """The running containers of ``name`` when they already are the release's (image and config), else None.
    Containers that no longer run (left by an interrupted deploy) are removed."""
    containers = _of(docker, name)
    for c in containers:
        if c.status not in ("running", "restarting"):
            docker.remove_now(c.name)
    old = [c for c in containers if c.status in ("running", "restarting")]
    want = docker.config_hash(name)
    same = len(old) == replicas and all(
        c.image == image_id and docker.container_labels(c.name).get("com.docker.compose.config-hash") == want
        for c in old
    )
    return old if same else None


def deploy_processes(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    release: str,
    report: Progress = lambda _: None,
    on_line: LineSink | None = None,
    serving_image: str | None = None,
) -> list[ProcessChange]:
    """Put every process on the image app_image names now (start-first), or raise with the old ones untouched.

    ``serving_image``: the image of the release that serves; on failure app_image is tagged back to it, so the
    next Compose operation does not pick up the failed build."""
    config = project.config
    if not config.processes:
        return []
    image_id = docker.image_id(app_image(config))
    changes: list[ProcessChange] = []
    for name, process in sorted(config.processes.items()):
        if _current(docker, name, process.replicas, image_id) is not None:
            report(f"process {name} already runs this release ({process.replicas} containers); nothing recreated")
            continue
        old = [c for c in _of(docker, name) if c.status in ("running", "restarting")]
        report(f"starting process {name} of release {release} ({process.replicas} containers) beside {len(old)} old")
        known = {c.id for c in old}
        try:
            docker.start_beside(name, len(old) + process.replicas, on_line)
        except DockerError:
            _remove_new(
                docker, [*changes, ProcessChange(name, old, [c for c in _of(docker, name) if c.id not in known])]
            )
            _tag_back(project, docker, serving_image)
            raise
        changes.append(ProcessChange(name, old, [c for c in _of(docker, name) if c.id not in known]))
    if not changes:
        return changes
    _wait_new(project, docker, deadline, release, changes, serving_image, report)
    stopping = [(change.name, c) for change in changes for c in change.old]
    for name, c in stopping:
        grace = config.processes[name].stop_grace
        report(f"{c.name} (process {name}, old release): SIGTERM, up to {grace}s to finish its job")
    # At once: each old container has its own stop grace, the slowest bounds the wait.
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(stopping)))) as pool:
        for future in [pool.submit(docker.stop_and_remove, c.name) for _, c in stopping]:
            future.result()
    return changes


def _wait_new(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    release: str,
    changes: list[ProcessChange],
    serving_image: str | None,
    report: Progress,
) -> None:
    """Wait until every new container is healthy (or, without health_command, ran SETTLE_SECONDS unharmed)."""
    config = project.config
    wanted = {c.id: change.name for change in changes for c in change.new}
    running_since: dict[str, float] = {}
    started = deadline.clock()
    report(f"waiting for the new process containers to turn healthy ({len(wanted)})")

    def observe() -> Poll[str | None]:
        now = deadline.clock()
        found = {c.id: c for c in docker.containers() if c.id in wanted}
        waiting: list[str] = []
        for cid, name in sorted(wanted.items(), key=lambda kv: kv[1]):
            c = found.get(cid)
            if c is None:
                return Poll(cid, False, True, f"{name}: its new container disappeared")
            if c.status == "exited" or c.restart_count > 0 or c.health == "unhealthy":
                state = f"{c.status}, health {c.health or 'n/a'}, exit code {c.exit_code}, restarted {c.restart_count}"
                return Poll(c.name, False, True, f"{name} ({c.name}): {state}")
            checked = config.processes[name].health_command is not None
            if c.status != "running" or (checked and c.health != "healthy"):
                waiting.append(f"{c.name}: {c.status}, health {c.health or 'n/a'}")
                continue
            if not checked and now - running_since.setdefault(cid, now) < SETTLE_SECONDS:
                waiting.append(f"{c.name}: running for less than {SETTLE_SECONDS:g}s")
        return Poll(waiting[0].split(":")[0] if waiting else None, not waiting, False, "; ".join(waiting))

    seen, timed_out = deadline.poll(observe)
    if seen.done:
        return
    culprit = seen.value or next(iter(c.name for change in changes for c in change.new), "")
    logs = docker.final_logs(culprit, LOG_LINES) if culprit else ""
    _remove_new(docker, changes)
    _tag_back(project, docker, serving_image)
    why = deadline.ran_out("waiting for the processes", started) if timed_out else "it failed"
    raise HealthTimeoutError(
        f"the processes of release {release} did not turn healthy ({why}); last seen: {seen.detail}. Their new "
        "containers were removed; the old ones were never stopped and the release that was serving still serves.\n"
        f"Last log lines of {culprit}:\n{quote_log(logs)}\n"
        "fix: "
        + (
            read_only_hint(logs, project.config.app.read_only)
            or "make the process start and its health_command exit 0 (`composekit logs NAME` shows its output), "
            "then run `composekit up` again"
        )
    )


def _remove_new(docker: Docker, changes: list[ProcessChange]) -> None:
    for change in changes:
        for c in change.new:
            docker.remove_now(c.name)


def _tag_back(project: Project, docker: Docker, serving_image: str | None) -> None:
    if serving_image is not None:
        docker.tag(serving_image, app_image(project.config))


def deploy_scheduler(
    project: Project, docker: Docker, release: str, report: Progress = lambda _: None, on_line: LineSink | None = None
) -> bool:
    """Put the scheduler (schedules/) on the image app_image names now, stop-first: the old one gets SIGTERM, starts
    no more jobs and finishes the running ones within its stop grace (the longest timeout); only then does the new one
    start. It catches up once on each time that passed meanwhile (runtime/scheduler.py): no run doubled, none skipped.
    Left alone when it already runs this release. Returns whether it was replaced."""
    if not project.config.schedules:
        return False
    image_id = docker.image_id(app_image(project.config))
    if _current(docker, SCHEDULER_SERVICE, 1, image_id) is not None:
        report(f"the scheduler already runs release {release}; nothing recreated")
        return False
    for c in _of(docker, SCHEDULER_SERVICE):
        report(f"{c.name} (scheduler, old release): SIGTERM; it finishes its running jobs before the new one starts")
        docker.stop_and_remove(c.name)
    report(f"starting the scheduler of release {release}")
    docker.up([SCHEDULER_SERVICE], dependencies=False, on_line=on_line)
    return True


def put_back(
    project: Project,
    docker: Docker,
    deadline: Deadline,
    serving_image: str,
    release: str,
    report: Progress = lambda _: None,
    on_line: LineSink | None = None,
) -> None:
    """After the app's switch failed (the release that was serving still serves): the processes and the scheduler,
    already moved to the new image, go back to ``serving_image`` the way a deploy moves them (start-first,
    stop-first), so the workers run the code of the app that serves. ``release``: the serving release's id."""
    if not project.config.processes and not project.config.schedules:
        return
    report(f"putting the processes and the scheduler back on release {release}, which still serves")
    docker.tag(serving_image, app_image(project.config))
    back = Deadline(max(deadline.remaining(), PUT_BACK_SECONDS), deadline.clock, deadline.sleep)
    deploy_processes(project, docker, back, release, report, on_line, serving_image)
    deploy_scheduler(project, docker, release, report, on_line)
