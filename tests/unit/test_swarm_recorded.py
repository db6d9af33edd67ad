"""Swarm mode's engine side (composekit/engine/swarm/), driven by JSON recorded from a real Swarm.

tests/data/swarm/ holds what Docker Engine 20.10 answered about a stack deployed by record.sh (see its README):
a replicated web service with a healthcheck, created, updated start-first, then an unhealthy update that Swarm
rolled back; a replicated-job migration that completed, and one that failed. A fake Docker replays those
answers in order, so the job runner, the convergence waiter, status and down decide on what Swarm really says.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.engine import swarm
from composekit.engine.docker import Docker, Shipped
from composekit.engine.swarm.failures import LOGS_WAIT, image_fix
from composekit.engine.swarm.image import build_file
from composekit.engine.swarm.status import service_row
from composekit.engine.target import Engine, Target
from composekit.engine.wait import Deadline
from composekit.errors import DockerError, HealthTimeoutError, MigrationError, UserError

DATA = Path(__file__).resolve().parents[1] / "data" / "swarm"
STACK = "swrec"
WEB = f"{STACK}_web"
MIGRATE = f"{STACK}_migrate"
ME = "sw5j7kapy7n7cbrcfgxkjd5pw"  # the recorded manager's node id


@cache
def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def load(name: str) -> Any:
    return copy.deepcopy(_load(name))


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = load(f"service-{name}.json")[0]
    return found


def tasks(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load(f"tasks-{name}.json")
    return found


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def deadline(timeout: float = 60) -> Deadline:
    c = FakeClock()
    return Deadline(timeout, clock=c.clock, sleep=c.sleep)


class RecordedSwarm(Docker):
    """A Docker whose Swarm answers are recorded ones: each call of service_inspect / service_tasks takes the next
    recorded moment of that service (the last one repeats)."""

    def __init__(
        self,
        services: Mapping[str, list[dict[str, Any] | None]] | None = None,
        task_lists: Mapping[str, list[list[dict[str, Any]]]] | None = None,
        nodes: list[dict[str, Any]] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(STACK, [], engine=Engine(Target("unix:///run/manager.sock", "--host")))
        self.moments = {k: list(v) for k, v in (services or {}).items()}
        self.task_moments = {k: list(v) for k, v in (task_lists or {}).items()}
        self.recorded_nodes = nodes if nodes is not None else load("nodes.json")
        self.info = info if info is not None else {"Swarm": load("info-swarm-manager.json")}
        self.calls: list[tuple[str, ...]] = []
        self.networks: list[list[dict[str, Any]]] = []
        self.task_containers: list[list[tuple[str, str]]] = []
        self.logs_text = "migrating\nrelation users already exists"

    @staticmethod
    def _next(queue: list[Any]) -> Any:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def engine_info(self) -> dict[str, Any]:
        return self.info

    def image_exists(self, image: str) -> bool:
        return False

    def service_inspect(self, service: str) -> dict[str, Any] | None:
        self.calls.append(("inspect", service))
        found: dict[str, Any] | None = self._next(self.moments[service]) if service in self.moments else None
        return found

    def service_tasks(self, service: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._next(self.task_moments[service]) if service in self.task_moments else []
        return found

    def stack_deploy(self, stack: str, file: Path, variables: Mapping[str, str], registry_auth: bool = False) -> str:
        self.calls.append(("deploy", stack, file.name, *sorted(variables), *(["auth"] if registry_auth else [])))
        return ""

    def service_remove(self, service: str) -> None:
        self.calls.append(("rm", service))

    def service_logs(self, service: str, tail: int | None = None) -> str:
        return self.logs_text

    def nodes(self) -> list[dict[str, Any]]:
        return self.recorded_nodes

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        return [m[0] for m in self.moments.values() if m and m[0] is not None]

    def stack_networks(self, stack: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._next(self.networks) if self.networks else []
        return found

    def stack_volumes(self, stack: str) -> list[str]:
        return [f"{stack}_acme", f"{stack}_db-data"]

    def stack_containers(self, stack: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = self._next(self.task_containers) if self.task_containers else []
        removed = {c[1] for c in self.calls if c[0] == "rm container"}
        return [(name, state) for name, state in found if name not in removed]

    def remove_container(self, container: str) -> None:
        self.calls.append(("rm container", container))

    def remove_volume(self, name: str) -> None:
        self.calls.append(("rm volume", name))

    def stack_remove(self, stack: str) -> None:
        self.calls.append(("stack rm", stack))


# parsing ------------------------------------------------------------------------------------------------


def test_swarm_state_of_a_manager_and_of_an_engine_outside_any_swarm() -> None:
    assert swarm.swarm_state({"Swarm": load("info-swarm-manager.json")}) == swarm.SwarmState(
        "active", True, ME, 1, 1, ""
    )
    inactive = swarm.swarm_state({"Swarm": load("info-swarm-inactive.json")})
    assert (inactive.active, inactive.manager, inactive.nodes) == (False, False, 0)


def test_parse_node() -> None:
    node = swarm.parse_node(load("nodes.json")[0])
    assert node == swarm.NodeInfo(ME, "vm", "manager", "active", "ready", "127.0.0.1", True, {})
    assert node.schedulable


@pytest.mark.parametrize(
    ("name", "mode", "replicas", "update"),
    [
        ("web-created", "replicated", 2, None),
        ("web-updating", "replicated", 2, "updating"),
        ("web-completed", "replicated", 2, "completed"),
        ("web-rollback-started", "replicated", 2, "rollback_started"),
        ("web-rollback-completed", "replicated", 2, "rollback_completed"),
        ("migrate-complete", "replicated-job", None, None),
        ("migrate-failed", "replicated-job", None, None),
    ],
)
def test_parse_service(name: str, mode: str, replicas: int | None, update: str | None) -> None:
    svc = swarm.parse_service(service(name))
    assert (svc.mode, svc.replicas, svc.update.state if svc.update else None) == (mode, replicas, update)
    assert svc.image == "composekit-test/python:3.11"
    assert svc.healthcheck == name.startswith("web")


def test_the_template_changes_with_the_spec_and_not_with_the_update_status() -> None:
    """What the waiter compares: updating and completed carry the same new spec; a rollback restores the old."""
    created, updating, completed, rolled = (
        swarm.parse_service(service(n))
        for n in ("web-created", "web-updating", "web-completed", "web-rollback-started")
    )
    assert created.template != updating.template == completed.template == rolled.template


def test_parse_task_of_a_failed_update_and_a_failed_job() -> None:
    failed = [swarm.parse_task(t) for t in tasks("web-rollback-completed") if t["Status"]["State"] == "failed"]
    assert [(t.id[:12], t.slot, t.desired, t.error, t.exit_code) for t in failed] == [
        ("rsg6krqma438", 2, "shutdown", "task: non-zero exit (137): dockerexec: unhealthy container", 137)
    ]
    (job,) = [swarm.parse_task(t) for t in tasks("migrate-failed")]
    assert (job.slot, job.state, job.error, job.exit_code) == (None, "failed", "task: non-zero exit (3)", 3)


# the engine is a manager --------------------------------------------------------------------------------


def test_require_manager_refuses_an_engine_outside_a_swarm() -> None:
    docker = RecordedSwarm(info={"Swarm": load("info-swarm-inactive.json")})
    with pytest.raises(UserError) as exc:
        swarm.require_manager(docker)
    assert str(exc.value) == (
        "mode: swarm deploys to a Swarm, but the engine unix:///run/manager.sock (from --host) is not in one "
        "(Swarm: inactive). Fix: run `docker swarm init` on the server that is to be the manager (and "
        "`docker swarm join` on the others), or set mode: compose"
    )


def test_require_manager_refuses_a_worker() -> None:
    with pytest.raises(UserError) as exc:
        swarm.require_manager(RecordedSwarm(info={"Swarm": load("info-swarm-worker.json")}))
    assert str(exc.value) == (
        "mode: swarm deploys through a Swarm manager, but the engine unix:///run/manager.sock (from --host) is a "
        "worker node. Fix: point composekit at a manager (--host, host: in composekit.yaml, DOCKER_HOST or a docker "
        "context); `docker node ls` on a manager lists them"
    )
    assert swarm.require_manager(RecordedSwarm()).manager


# shipping the image ------------------------------------------------------------------------------------------


MANAGER2 = "b1kokhpp8x88nlridc4voejwk"  # the manager's node id in the two-node recordings (record-nodes.sh)


def two_nodes(state: str = "ready") -> list[dict[str, Any]]:
    """The two-node Swarm as recorded: the manager vm and the worker ck-node2, Ready or (its engine stopped) Down."""
    found: list[dict[str, Any]] = load("nodes-two.json" if state == "ready" else "nodes-node2-down.json")
    return sorted(found, key=lambda n: n["ID"] != MANAGER2)


def two_node_info() -> dict[str, Any]:
    """The manager's `docker info` Swarm part for the two-node recordings: the one-node recording's, edited to the
    two-node manager's id, address and node count (record-nodes.sh records the nodes, not the manager's info)."""
    info: dict[str, Any] = load("info-swarm-manager.json")
    info.update(NodeID=MANAGER2, NodeAddr="10.231.7.1", Nodes=2)
    return {"Swarm": info}


class NodeDocker(RecordedSwarm):
    def __init__(self, has: bool, engine: Engine | None = None) -> None:
        super().__init__()
        self.has = has
        self.engine = engine or self.engine

    def image_exists(self, image: str) -> bool:
        return self.has


@contextmanager
def fake_connect(target: Target) -> Any:
    yield Engine(target)


def test_ship_image_sends_the_image_to_a_node_that_lacks_it() -> None:
    manager = RecordedSwarm(nodes=two_nodes(), info=two_node_info())
    sent: list[tuple[str, str]] = []

    def ship(image: str, to: Docker) -> Shipped:
        sent.append((image, to.engine.target.url))
        return Shipped(123_456, 5, 3)

    manager.ship_image = ship  # type: ignore[method-assign]
    said: list[str] = []
    shipments = swarm.ship_image(
        manager,
        "shop-app:abc",
        {"ck-node2": "unix:///run/ck-node2.sock"},
        "composekit.yaml",
        said.append,
        node_docker=lambda engine: NodeDocker(False, engine),
        connector=fake_connect,
    )
    assert shipments == [swarm.Shipment("vm", 0, "built here"), swarm.Shipment("ck-node2", 123_456, "shipped")]
    assert sent == [("shop-app:abc", "unix:///run/ck-node2.sock")]
    assert said == [
        "shipped shop-app:abc to node ck-node2 (unix:///run/ck-node2.sock): 123,456 bytes sent (2 of 5 layers; it "
        "had the other 3)"
    ]


def test_ship_image_skips_a_node_that_has_it_and_one_that_is_down() -> None:
    manager = RecordedSwarm(nodes=two_nodes(), info=two_node_info())
    manager.ship_image = lambda image, to: pytest.fail("shipped")  # type: ignore[method-assign]
    shipments = swarm.ship_image(
        manager,
        "shop-app:abc",
        {"ck-node2": "unix:///x"},
        "c.yaml",
        node_docker=lambda e: NodeDocker(True),
        connector=fake_connect,
    )
    assert shipments[1] == swarm.Shipment("ck-node2", 0, "already had it")
    down = RecordedSwarm(nodes=two_nodes("down"), info=two_node_info())
    said: list[str] = []
    assert swarm.ship_image(down, "shop-app:abc", {}, "c.yaml", said.append, connector=fake_connect)[1] == (
        swarm.Shipment("ck-node2", 0, "down: skipped")
    )
    assert said == ["node ck-node2 is down: the image is not shipped there (Swarm schedules nothing)"]


def test_a_node_without_an_engine_address_is_an_error_naming_it_and_the_key() -> None:
    with pytest.raises(UserError) as exc:
        swarm.ship_image(
            RecordedSwarm(nodes=two_nodes(), info=two_node_info()),
            "shop-app:abc",
            {},
            "composekit.yaml",
            connector=fake_connect,
        )
    assert str(exc.value) == (
        "Swarm node ck-node2 can only run the app if the app image reaches it, but composekit.yaml has no engine "
        "address for it under swarm/nodes and no registry is set. Fix: add it, e.g. swarm: {nodes: {ck-node2: "
        '"ssh://user@ck-node2"}} (any Docker host or context name works), or set registry: to push the image there '
        "instead"
    )


# the migration job --------------------------------------------------------------------------------------------


def test_run_job_removes_the_previous_job_deploys_and_waits_for_complete() -> None:
    docker = RecordedSwarm(
        services={MIGRATE: [service("migrate-complete")]},
        task_lists={MIGRATE: [[], tasks("migrate-running"), tasks("migrate-complete")]},
    )
    result = swarm.run_job(docker, STACK, "migrate", Path("migrate.yml"), {"COMPOSEKIT_RELEASE": "r1"}, deadline())
    assert docker.calls[:3] == [
        ("inspect", MIGRATE),
        ("rm", MIGRATE),
        ("deploy", STACK, "migrate.yml", "COMPOSEKIT_RELEASE"),
    ]
    assert (result.task.state, result.task.id) == ("complete", tasks("migrate-complete")[0]["ID"])


def test_run_job_that_fails_raises_with_its_error_and_output() -> None:
    docker = RecordedSwarm(services={}, task_lists={MIGRATE: [tasks("migrate-failed")]})
    with pytest.raises(MigrationError) as exc:
        swarm.run_job(docker, STACK, "migrate", Path("/p/.composekit/migrate.yml"), {}, deadline())
    assert ("rm", MIGRATE) not in docker.calls  # there was none to remove
    assert exc.value.summary == (
        "the migration job swrec_migrate failed (task l3toq5w4t1cz on vm: failed (task: non-zero exit (3))), so the "
        "app was not updated: the running service is untouched"
    )
    assert exc.value.stderr == "migrating\nrelation users already exists"
    assert exc.value.hint == "fix the migration (its output is above) and run `composekit up` again"


def test_run_job_that_runs_out_of_time() -> None:
    docker = RecordedSwarm(task_lists={MIGRATE: [tasks("migrate-running")]})
    with pytest.raises(HealthTimeoutError) as exc:
        swarm.run_job(docker, STACK, "migrate", Path("migrate.yml"), {}, deadline(10))
    state = swarm.parse_task(tasks("migrate-running")[0])
    assert str(exc.value) == (
        "`up` ran out of its --timeout of 10s while the migration job ran (after 10s in total, 10s of them in this "
        f"step); its task was still {state.state} ({state.message}) and the app was not touched.\n"
        "Last log lines of swrec_migrate:\n    migrating\n    relation users already exists\n"
        "fix: make the migration finish (is it waiting for the database?) or raise --timeout"
    )


# convergence --------------------------------------------------------------------------------------------------


def test_a_new_service_converges_once_every_task_runs() -> None:
    docker = RecordedSwarm(
        services={WEB: [service("web-created")]},
        task_lists={WEB: [tasks("web-starting"), tasks("web-starting"), tasks("web-running")]},
    )
    svc = swarm.wait_converged(docker, WEB, None, deadline())
    assert svc.replicas == 2
    assert docker.task_moments[WEB] == [tasks("web-running")]  # it waited through both starting moments


def test_an_update_converges_only_when_swarm_says_completed() -> None:
    not_started = service("web-updating")
    not_started["UpdateStatus"] = service("web-created").get("UpdateStatus")  # the spec is new, no update yet
    not_started.pop("UpdateStatus", None)
    docker = RecordedSwarm(
        services={WEB: [not_started, service("web-updating"), service("web-completed")]},
        task_lists={WEB: [tasks("web-running"), tasks("web-updating"), tasks("web-completed")]},
    )
    svc = swarm.wait_converged(docker, WEB, service("web-created"), deadline())
    assert svc.update is not None and svc.update.state == "completed"
    assert docker.moments[WEB] == [service("web-completed")]


def test_an_unchanged_spec_needs_no_update() -> None:
    docker = RecordedSwarm(services={WEB: [service("web-completed")]}, task_lists={WEB: [tasks("web-completed")]})
    assert swarm.wait_converged(docker, WEB, service("web-completed"), deadline()).update is not None


def test_a_rolled_back_update_is_an_error_naming_swarms_message_and_the_failed_task() -> None:
    deployed = service("web-completed")  # version 3 deployed, Swarm's update not started yet (edited: the env)
    deployed["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] = ["VERSION=3"]
    docker = RecordedSwarm(
        services={WEB: [deployed, service("web-rollback-started")]},
        task_lists={WEB: [tasks("web-completed"), tasks("web-rollback-completed")]},
    )
    docker.logs_text = "unhealthy"
    with pytest.raises(HealthTimeoutError) as exc:
        swarm.wait_converged(docker, WEB, service("web-completed"), deadline(), what="the app")
    assert str(exc.value) == (
        "Swarm rolled back the new version of the app: UpdateStatus rollback_started: update rolled back due to "
        "failure or early termination of task rsg6krqma438s5w5qo7u5ygg6. The previous version is serving again.\n"
        "Failed tasks:\n"
        "    task rsg6krqma438 on vm: failed (task: non-zero exit (137): dockerexec: unhealthy container)\n"
        "Last log lines of task rsg6krqma438 of swrec_web:\n    unhealthy\n"
        "fix: make the new version start and pass its healthcheck (`composekit logs app`), then run `composekit up` "
        "again"
    )


def test_a_rollback_left_by_an_earlier_deploy_is_not_this_deploys_failure() -> None:
    docker = RecordedSwarm(
        services={WEB: [service("web-rollback-completed")]}, task_lists={WEB: [tasks("web-rollback-completed")]}
    )
    svc = swarm.wait_converged(docker, WEB, service("web-rollback-completed"), deadline())
    assert svc.update is not None and svc.update.state == "rollback_completed"


def test_a_service_that_never_converges_times_out_with_what_it_saw() -> None:
    docker = RecordedSwarm(services={WEB: [service("web-created")]}, task_lists={WEB: [tasks("web-starting")]})
    docker.logs_text = ""
    with pytest.raises(HealthTimeoutError) as exc:
        swarm.wait_converged(docker, WEB, None, deadline(20), what="the app")
    assert str(exc.value) == (
        "`up` ran out of its --timeout of 20s while waiting for the app to converge (after 20s in total, 20s of them "
        "in this step). Last status: 0/2 tasks running (others starting)\n"
        "Failed tasks:\n    (no failed task)\n"
        "Last log lines of swrec_web:\n    (no output)\n"
        "fix: check that the service starts and passes its healthcheck (`composekit status` shows its tasks); "
        "volumes are kept, nothing was deleted"
    )


def test_a_crash_looping_new_service_fails_early() -> None:
    created = service("web-created")
    failing = []
    for i in range(3):  # slot 2 failed three times since the service was created (edited from the failed task)
        t = copy.deepcopy(next(t for t in tasks("web-rollback-completed") if t["Status"]["State"] == "failed"))
        t["ID"] = f"failedtask{i}xxxxxxxxxxxxxx"
        t["CreatedAt"] = f"2026-11-30T05:26:0{i}.000000000Z"
        failing.append(t)
    docker = RecordedSwarm(services={WEB: [created]}, task_lists={WEB: [tasks("web-starting") + failing]})
    docker.logs_text = ""
    clock = deadline(300)
    with pytest.raises(HealthTimeoutError) as exc:
        swarm.wait_converged(docker, WEB, None, clock, what="the app")
    assert str(exc.value) == (
        "the app did not start: its tasks keep failing (3 failed since the deploy). Last status: its tasks keep "
        "failing (3 failed since the deploy)\nFailed tasks:\n"
        + "".join(
            f"    task failedtask{i}x on vm: failed (task: non-zero exit (137): dockerexec: unhealthy container)\n"
            for i in range(3)
        )
        + "Last log lines of swrec_web:\n    (no output)\n"
        "fix: check that the service starts and passes its healthcheck (`composekit status` shows its tasks); "
        "volumes are kept, nothing was deleted"
    )
    assert clock.elapsed() <= LOGS_WAIT  # no waiting for the deadline: only for the (empty) logs


# status and down ------------------------------------------------------------------------------------------------


def test_status_rows_of_a_recorded_stack() -> None:
    nodes = {ME: "vm"}
    row = service_row(STACK, service("web-completed"), tasks("web-completed"), nodes)
    assert (row.service, row.mode, row.running, row.desired, row.update) == (
        "web",
        "replicated",
        2,
        2,
        "completed: update completed",
    )
    assert [(t.task, t.node, t.state, t.health) for t in row.tasks] == [
        ("web.1", "vm", "running", "healthy"),
        ("web.2", "vm", "running", "healthy"),
    ]
    starting = service_row(STACK, service("web-created"), tasks("web-starting"), nodes)
    assert [(t.state, t.health) for t in starting.tasks] == [("starting", "starting")] * 2
    assert starting.running == 0
    job = service_row(STACK, service("migrate-failed"), tasks("migrate-failed"), nodes)
    assert (job.service, job.mode, job.desired, [(t.task, t.state, t.error) for t in job.tasks]) == (
        "migrate",
        "replicated-job",
        None,
        [("migrate", "failed", "task: non-zero exit (3)")],
    )


def test_down_removes_the_stack_waits_for_its_networks_and_keeps_volumes() -> None:
    docker = RecordedSwarm(services={WEB: [service("web-completed")]})
    docker.networks = [load("networks.json"), load("networks.json"), load("networks.json"), []]
    clock = deadline()
    assert swarm.remove_stack(docker, STACK, clock) == ["swrec_acme", "swrec_db-data"]
    assert ("stack rm", STACK) in docker.calls
    assert clock.elapsed() > 0  # it waited for the networks


def test_down_times_out_naming_the_networks_left() -> None:
    docker = RecordedSwarm(services={WEB: [service("web-completed")]})
    docker.networks = [load("networks.json")]
    with pytest.raises(HealthTimeoutError) as exc:
        swarm.remove_stack(docker, STACK, deadline(5))
    assert str(exc.value) == (
        "the networks of stack swrec were still there 5s after `docker stack rm swrec`: swrec_web\n"
        "fix: `docker stack ps swrec` shows tasks that have not stopped yet; run `composekit down` again once they "
        "have"
    )


def test_down_with_delete_volumes_deletes_the_stacks_volumes_on_the_manager() -> None:
    docker = RecordedSwarm(services={WEB: [service("web-completed")]})
    docker.networks = [[]]
    assert swarm.down(docker, STACK, False, deadline()) == ["swrec_acme", "swrec_db-data"]
    assert not [c for c in docker.calls if c[0].startswith("rm ")]
    swarm.down(docker, STACK, True, deadline())
    assert [c for c in docker.calls if c[0].startswith("rm ")] == [
        ("rm volume", "swrec_acme"),
        ("rm volume", "swrec_db-data"),
    ]


def test_down_with_delete_volumes_waits_for_the_tasks_and_removes_the_finished_job_container_first() -> None:
    """A finished migration job's task container outlives `docker stack rm` and keeps its volumes in use: down
    waits until nothing of the stack runs, removes the ended containers, then the volumes."""
    docker = RecordedSwarm(services={WEB: [service("web-completed")]})
    docker.networks = [[]]
    docker.task_containers = [[("app1", "running"), ("job1", "exited")], [("app1", "exited"), ("job1", "exited")]]
    clock = deadline()
    swarm.down(docker, STACK, True, clock)
    assert clock.elapsed() > 0  # it waited for app1 to stop
    assert [c for c in docker.calls if c[0].startswith("rm ")] == [
        ("rm container", "app1"),
        ("rm container", "job1"),
        ("rm volume", "swrec_acme"),
        ("rm volume", "swrec_db-data"),
    ]


def test_down_with_delete_volumes_keeps_them_when_a_task_does_not_stop_and_says_so() -> None:
    docker = RecordedSwarm(services={WEB: [service("web-completed")]})
    docker.networks = [[]]
    docker.task_containers = [[("0123456789abcdef", "running")]]
    with pytest.raises(HealthTimeoutError) as exc:
        swarm.down(docker, STACK, True, deadline(5))
    assert "containers of stack swrec were still running 5s after `docker stack rm swrec`: 0123456789ab" in str(
        exc.value
    )
    assert "its volumes were not deleted" in str(exc.value)
    assert not [c for c in docker.calls if c[0].startswith("rm ")]


def test_build_file_builds_the_app_with_its_dockerfile_and_tags_the_release(tmp_path: Path) -> None:
    from composekit.config.project import load_project

    (tmp_path / "app").mkdir()
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(
        "name: shop\ndomain: shop.example.com\nacme: {email: ops@example.com}\napp: {module: app.main:app}\n"
    )
    project = load_project((tmp_path / "composekit.yaml",))
    doc = yaml.safe_load(build_file(project, "shop-app:r1"))
    assert doc == {
        "services": {
            "app": {
                "build": {
                    "context": str(tmp_path.resolve()),
                    "dockerfile": ".composekit/Dockerfile",
                    "args": {"PYTHON_IMAGE": project.config.images.python},
                },
                "image": "shop-app:r1",
            }
        }
    }


def test_the_output_of_a_task_that_just_ended_is_asked_for_again_while_empty() -> None:
    docker = RecordedSwarm(task_lists={MIGRATE: [tasks("migrate-failed")]})
    answers = ["", "", "migrating\nrelation users already exists"]
    docker.service_logs = lambda service, tail=None: answers.pop(0) if len(answers) > 1 else answers[0]  # type: ignore[method-assign]
    with pytest.raises(MigrationError) as exc:
        swarm.run_job(docker, STACK, "migrate", Path("migrate.yml"), {}, deadline())
    assert exc.value.stderr == "migrating\nrelation users already exists"


def test_a_network_removed_between_listing_and_inspecting_is_left_out() -> None:
    """`docker stack rm` removes the networks while `down` polls them: a vanished one is not an error."""
    docker = Docker(STACK, [])
    answers = {"ls": "n1\nn2\n"}

    def run(summary: str, args: list[str], *rest: Any, **kw: Any) -> str:
        return answers["ls"]

    def inspect(summary: str, kind: list[str], ids: list[str]) -> list[dict[str, Any]]:
        if ids == ["n1"]:
            raise DockerError(
                "cannot inspect network n1", ["docker"], "Error response from daemon: network n1 not found"
            )
        return [{"Name": "swrec_web"}]

    docker._docker = run  # type: ignore[method-assign]
    docker._inspect = inspect  # type: ignore[method-assign]
    assert docker.stack_networks(STACK) == [{"Name": "swrec_web"}]


def _rejected(image: str) -> list[dict[str, Any]]:
    """The recorded failed migration task, as a node that could not get ``image`` leaves it."""
    raw = copy.deepcopy(tasks("migrate-failed"))
    raw[0]["Status"].update({"State": "rejected", "Err": f"No such image: {image}"})
    raw[0]["Spec"]["ContainerSpec"]["Image"] = image
    return raw


def test_a_node_that_could_not_pull_from_the_registry_is_said_with_the_login_fix() -> None:
    # As test_swarm saw it before `docker stack deploy --with-registry-auth`: the job's task rejected on node2.
    image = "10.231.7.1:5000/composekit-test/sw-app-app:r1"
    docker = RecordedSwarm(services={}, task_lists={MIGRATE: [_rejected(image)]})
    with pytest.raises(MigrationError) as exc:
        swarm.run_job(docker, STACK, "migrate", Path("/p/.composekit/migrate.yml"), {}, deadline())
    assert exc.value.hint == (
        f"node vm could not pull {image} from 10.231.7.1:5000: log in to it on this machine (`docker login "
        "10.231.7.1:5000`; composekit hands that login to the nodes) and check that the node reaches it, then run "
        "`composekit up` again"
    )


def test_a_node_without_the_shipped_image_is_told_to_be_listed_under_swarm_nodes() -> None:
    nodes = {swarm.parse_task(_rejected("shop-app:r1")[0]).node_id: "worker-3"}
    assert image_fix([swarm.parse_task(_rejected("shop-app:r1")[0])], nodes) == (
        "node worker-3 does not have shop-app:r1: name its engine under swarm/nodes so that composekit ships the "
        "image there (or set registry:), then run `composekit up` again"
    )
    assert image_fix([swarm.parse_task(t) for t in tasks("migrate-failed")], nodes) is None
