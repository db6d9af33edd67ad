"""The migration job of mode: swarm: a `replicated-job` that runs and completes before the app service changes
(Swarm has no depends_on)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ...errors import HealthTimeoutError, MigrationError
from ..docker import Docker
from ..wait import Deadline, Poll, Progress
from .failures import describe_task, image_fix, indent, node_names, service_logs
from .parse import FAILED_STATES, TaskInfo, parse_task

__all__ = ["JobResult", "run_job"]


@dataclass(frozen=True)
class JobResult:
    service: str
    task: TaskInfo
    seconds: float


def run_job(
    docker: Docker,
    stack: str,
    service: str,
    file: Path,
    variables: Mapping[str, str],
    deadline: Deadline,
    report: Progress = lambda _: None,
    registry_auth: bool = False,
) -> JobResult:
    """Run the one-shot job of ``file`` (a replicated-job) in ``stack``: remove the job left by the previous deploy,
    deploy the file into the same stack (``registry_auth``: see Docker.stack_deploy), wait for its task to
    complete. A failed job raises MigrationError with its error and output; nothing else in the stack is touched."""
    name = f"{stack}_{service}"
    if docker.service_inspect(name) is not None:
        docker.service_remove(name)
    started = deadline.clock()
    docker.stack_deploy(stack, file, variables, registry_auth)
    report(f"running the migration job {name}")

    def observe() -> Poll[TaskInfo | None]:
        tasks = [parse_task(t) for t in docker.service_tasks(name)]
        if not tasks:
            return Poll(None, False, False, "no task yet")
        task = max(tasks, key=lambda t: t.created_at)
        if task.state == "complete":
            return Poll(task, True)
        if task.state in FAILED_STATES or (task.desired == "shutdown" and task.state == "shutdown"):
            return Poll(task, False, True, task.state)
        return Poll(task, False, False, f"{task.state} ({task.message})" if task.message else task.state)

    seen, timed_out = deadline.poll(observe)
    if seen.done and seen.value is not None:
        return JobResult(name, seen.value, deadline.clock() - started)
    ran_out = deadline.ran_out("the migration job ran", started)
    nodes = node_names(docker)
    logs = service_logs(docker, name, deadline, tail=40)
    if timed_out:
        raise HealthTimeoutError(
            f"{ran_out}; its task was still {seen.detail} and the app "
            f"was not touched.\nLast log lines of {name}:\n{indent(logs)}\n"
            "fix: make the migration finish (is it waiting for the database?) or raise --timeout"
        )
    task = seen.value
    assert task is not None
    raise MigrationError(
        f"the migration job {name} failed ({describe_task(task, nodes)}), so the app was not updated: the running "
        "service is untouched",
        ["docker", "stack", "deploy", "--compose-file", str(file), stack],
        logs,
        image_fix([task], nodes) or "fix the migration (its output is above) and run `composekit up` again",
    )
