"""The orchestration of `up` and `status`, and `Docker.containers()`, driven by JSON recorded from a real run.

tests/data/docker/ holds `docker container inspect` of every container of the fastapi-postgres template
(project checks-rec) at four moments of real deploys, and `docker compose ps --format json` at the same
moments (see its README). The inspect JSON goes through python-on-whales' own inspect model, exactly as
`Docker.containers()` reads a live engine (one `docker container inspect` of every listed container); a small fake
Docker then replays those states to `up`, `wait_healthy` and `status`, so their decisions are tested on what Docker
really reports, without a daemon.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from python_on_whales import Container
from python_on_whales.client_config import ClientConfig

import composekit.deploy.compose
from composekit.config.project import Project, load_project
from composekit.deploy import up
from composekit.engine import probes, steps
from composekit.engine import status as engine_status
from composekit.engine.docker import ContainerInfo, Docker, LineSink
from composekit.engine.switch import SwitchResult
from composekit.engine.target import Engine
from composekit.errors import DockerError, HealthTimeoutError, ImageError, MigrationError
from composekit.verify.checks import CheckResult, Report
from composekit.verify.smoke import SmokeOptions

from .fake_clock import fake_deadline
from .image_probe import probe_output

DATA = Path(__file__).resolve().parents[1] / "data" / "docker"
REPO = Path(__file__).resolve().parents[2]
PROJECT = "checks-rec"
# Recorded moments: a first deploy while the app and Traefik were starting, then healthy; a second deploy
# whose migration exited 3 (the app kept running); a third whose app crashed at start (restart: always).
STATES = ("starting", "healthy", "migrate-failed", "app-crashing")


class RecordedContainer(Container):
    """python-on-whales' Container whose `docker container inspect` answer is a recorded one."""

    def __init__(self, inspect: dict[str, Any]) -> None:
        self._recorded = inspect
        super().__init__(ClientConfig(), inspect["Id"], is_immutable_id=True)

    def _fetch_inspect_result_json(self, reference: str) -> dict[str, Any]:
        assert reference == self._recorded["Id"]
        return self._recorded


@cache
def inspect_json(state: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / f"inspect-{state}.json").read_text())
    return data


def compose_ps(state: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / f"compose-ps-{state}.jsonl").read_text().splitlines() if line]


def parse(records: list[dict[str, Any]], calls: list[dict[str, Any]] | None = None) -> list[ContainerInfo]:
    """`Docker.containers()` of a live engine whose `docker container inspect` answers ``records``."""
    docker = Docker(PROJECT, [Path("compose.yaml")])

    def listing(**kwargs: Any) -> list[Container]:
        if calls is not None:
            calls.append(kwargs)
        return [RecordedContainer(r) for r in records]

    def inspecting(argv: list[str]) -> str:
        """`docker container inspect ID...` (one call for them all), answered from the records."""
        ids = argv[argv.index("inspect") + 1 :]
        assert argv[-len(ids) - 2 : -len(ids)] == ["container", "inspect"] and ids == [r["Id"] for r in records]
        return json.dumps(records)

    with (
        mock.patch.object(docker.client.container, "list", listing),
        mock.patch("composekit.engine.docker_cli.run_command", inspecting),
    ):
        return docker.containers()


def recorded(state: str, services: tuple[str, ...] | None = None) -> list[ContainerInfo]:
    """The stack's containers at a recorded moment (only ``services``' when given)."""
    records = inspect_json(state)
    if services is not None:
        records = [r for r in records if r["Config"]["Labels"]["com.docker.compose.service"] in services]
    return parse(records)


# Docker.containers() ---------------------------------------------------------------------------------


def test_containers_parses_a_recorded_healthy_stack() -> None:
    calls: list[dict[str, Any]] = []
    found = parse(inspect_json("healthy"), calls)
    assert calls == [{"all": True, "filters": [("label", f"com.docker.compose.project={PROJECT}")]}]
    assert [(c.service, c.name, c.status, c.health, c.exit_code, c.restart_count) for c in found] == [
        ("app", "checks-rec-app-1", "running", "healthy", 0, 0),
        ("db", "checks-rec-db-1", "running", "healthy", 0, 0),
        ("migrate", "checks-rec-migrate-1", "exited", None, 0, 0),
        ("traefik", "checks-rec-traefik-1", "running", "healthy", 0, 0),
    ]
    by_service = {c.service: c for c in found}
    raw = {r["Config"]["Labels"]["com.docker.compose.service"]: r for r in inspect_json("healthy")}
    for service, c in by_service.items():
        assert (c.id, c.image) == (raw[service]["Id"], raw[service]["Image"])
        assert c.started_at is not None and c.started_at[:19] == raw[service]["State"]["StartedAt"][:19]
    # A running container has no finish time (Docker says 0001-01-01) and a PID; an exited one the reverse.
    assert (by_service["app"].finished_at, by_service["migrate"].pid) == (None, None)
    assert by_service["app"].pid == raw["app"]["State"]["Pid"] > 0
    assert by_service["migrate"].finished_at is not None


@pytest.mark.parametrize("state", STATES)
def test_containers_agree_with_compose_ps(state: str) -> None:
    """What composekit reads from `docker inspect` is what Compose itself reports at the same moment."""
    ours = {(c.service, c.name, c.status, c.health, c.exit_code) for c in recorded(state)}
    theirs = {(p["Service"], p["Name"], p["State"], p["Health"] or None, p["ExitCode"]) for p in compose_ps(state)}
    assert ours == theirs


def test_recorded_states_are_what_their_names_say() -> None:
    def health(state: str) -> dict[str, tuple[str, str | None, int | None, int]]:
        return {c.service: (c.status, c.health, c.exit_code, c.restart_count) for c in recorded(state)}

    assert health("starting")["app"] == ("running", "starting", 0, 0)
    assert health("migrate-failed")["migrate"] == ("exited", None, 3, 0)
    assert health("migrate-failed")["app"] == ("running", "healthy", 0, 0)
    assert health("app-crashing")["app"][3] >= 3


# a fake Docker that replays recorded states ----------------------------------------------------------


class FakeDocker(Docker):
    """Replays recorded states: each ``containers()`` answers the next one, the last one from then on.

    Everything it was asked to do is in ``calls``; a Docker method it does not fake fails (it has no client).
    """

    def __init__(
        self, *states: list[ContainerInfo], logs: str = "", workers: str = "2\n", lacks: frozenset[str] = frozenset()
    ) -> None:
        self.lacks = lacks  # what the built image lacks (probe_image)
        self.entrypoint: list[str] = []
        self.project_name = PROJECT
        self.compose_files = []
        self.engine = Engine.default()
        self.compose_environment = {}
        self.states = list(states)
        self.calls: list[tuple[Any, ...]] = []
        self._logs = logs
        self._workers = workers

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        return "lock-id"

    def remove_lock(self, container_id: str) -> bool:
        return True

    def engine_version(self) -> str:
        return "20.10.24"

    def compose_version(self) -> str:
        return "2.40.3"

    def containers(self) -> list[ContainerInfo]:
        self.calls.append(("containers",))
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def build(self, on_line: LineSink | None = None) -> None:
        self.calls.append(("build",))

    def probe_image(self, image: str, code: str, args: list[str], environment: dict[str, str]) -> str:
        self.calls.append(("probe_image", image))
        return probe_output(args, self.lacks)

    def tag(self, image: str, tag: str) -> None:
        self.calls.append(("tag", image, tag))

    def image_entrypoint(self, image: str) -> list[str]:
        return self.entrypoint

    def services(self) -> list[str]:
        return ["app", "db", "migrate", "traefik"]

    def up(
        self, services: list[str] | None = None, *, dependencies: bool = True, on_line: LineSink | None = None
    ) -> None:
        self.calls.append(("up", services, dependencies))

    def down(self, delete_volumes: bool, on_line: LineSink | None = None) -> None:
        self.calls.append(("down", delete_volumes))

    def logs(self, services: list[str], tail: int | None = None) -> str:
        self.calls.append(("logs", services))
        return self._logs

    def exec(self, container: str, argv: list[str]) -> str:
        self.calls.append(("exec", container, argv))
        return self._workers

    def asked(self, verb: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == verb]


def healthy_within(docker: Docker, services: list[str], seconds: float) -> list[ContainerInfo]:
    """steps.wait_healthy with a budget of ``seconds`` (the one place that knows its signature)."""
    return steps.wait_healthy(docker, services, fake_deadline(seconds))


# wait_healthy ----------------------------------------------------------------------------------------


def test_wait_healthy_waits_through_starting_until_healthy() -> None:
    fake = FakeDocker(recorded("starting"), recorded("healthy"))
    assert healthy_within(fake, ["traefik", "app"], 10) == recorded("healthy")


def test_wait_healthy_stops_at_once_on_a_crash_loop() -> None:
    crashing = recorded("app-crashing")
    restarts = next(c.restart_count for c in crashing if c.service == "app")
    fake = FakeDocker(crashing, logs="ModuleNotFoundError: No module named 'app.missing'")
    with pytest.raises(HealthTimeoutError) as info:
        healthy_within(fake, ["traefik", "app"], 5)
    assert str(info.value) == (
        f"the stack stopped while starting. Last status: app: running (exit code 0, restarted {restarts} times)\n"
        "Last log lines of app:\n"
        "    ModuleNotFoundError: No module named 'app.missing'\n"
        "fix: check that app starts and, for the app, that its health path answers 200 (`composekit logs app`); "
        "volumes are kept, nothing was deleted"
    )
    assert len(fake.asked("containers")) == 1
    assert fake.asked("logs") == [("logs", ["app"])]


def test_wait_healthy_times_out_with_the_last_status() -> None:
    fake = FakeDocker(recorded("starting"))
    with pytest.raises(HealthTimeoutError) as info:
        healthy_within(fake, ["traefik", "app"], 0.3)
    message = str(info.value)
    assert message.startswith(
        "the stack did not become healthy: `up` ran out of its --timeout of 0.3s while waiting for it (after 0s "
        "in total, 0s of them in this step). "
        "Last status: traefik: running, health starting; app: running, health starting\n"
    )
    assert len(fake.asked("containers")) >= 2  # it polled, then gave up


def test_wait_healthy_names_a_service_without_container() -> None:
    fake = FakeDocker(recorded("healthy", ("traefik", "db", "migrate")))
    with pytest.raises(HealthTimeoutError) as info:
        healthy_within(fake, ["traefik", "app"], 5)
    assert str(info.value).startswith("the stack stopped while starting. Last status: app: no container was created\n")


# up: the migration ----------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The fastapi-postgres template as project checks-rec (the recorded one), in a temporary copy."""
    copy = tmp_path / PROJECT
    ignore = shutil.ignore_patterns(".composekit", "__pycache__")
    shutil.copytree(REPO / "stacks" / "fastapi-postgres", copy, ignore=ignore)
    (copy / "secrets").mkdir()
    (copy / "secrets" / "db_password").write_text("x\n")
    (copy / "local.yaml").write_text(f"name: {PROJECT}\ndomain: {PROJECT}.composekit.test\n")
    return load_project((copy / "composekit.yaml", copy / "local.yaml"))


@pytest.fixture
def deploy_with(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeDocker], list[str]]:
    """Make deploy use the fake Docker, see free ports, and skip the HTTP routing probe; returns the routed log."""

    def install(fake: FakeDocker) -> list[str]:
        routed: list[str] = []
        monkeypatch.setattr(steps, "docker_for", lambda project, engine=None: fake)
        monkeypatch.setattr(steps, "port_is_free", lambda port: True)
        monkeypatch.setattr(probes, "wait_routed", lambda project, *_, **__: routed.append(project.config.domain))
        # The recorded states have no `files` container; deliver_files has its own tests below.
        monkeypatch.setattr(steps, "deliver_files", lambda docker, *_: fake.calls.append(("deliver_files",)))

        # The switch itself runs against the real engine (tests/integration/test_redeploy.py).
        def switch(project: Project, docker: FakeDocker, deadline: Any, release: str, *_: Any, **__: Any) -> Any:
            fake.calls.append(("switch_app", release))
            return SwitchResult(release, [], False, 0.0)

        monkeypatch.setattr(composekit.deploy.compose, "switch_app", switch)
        monkeypatch.setattr(composekit.deploy.compose, "read_releases", lambda docker: [])
        # Written in the routes volume (the routes container: tests/unit/test_releases.py, the real engine).
        monkeypatch.setattr(
            composekit.deploy.compose,
            "record_migration",
            lambda docker, release, state: fake.calls.append(("record_migration", release, state)),
        )
        return routed

    return install


MIGRATION_OUTPUT = 'migrate-1  | migration 0002: relation "items" already exists'


def test_failed_migration_keeps_the_running_app(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]]
) -> None:
    fake = FakeDocker(recorded("healthy"), recorded("migrate-failed"), logs=MIGRATION_OUTPUT)
    routed = deploy_with(fake)
    with pytest.raises(MigrationError) as info:
        up(project, timeout=30, smoke_wait=None)
    assert str(info.value) == (
        "the migration failed (exit code 3), so the app was not started. "
        "The app that was running before is untouched and still serving.\n"
        "  command: docker compose up migrate\n"
        "  docker said:\n"
        f"    {MIGRATION_OUTPUT}\n"
        "  fix: fix the migration (its output is above) and run `composekit up` again"
    )
    assert fake.asked("up") == [("up", ["migrate"], True)]  # the app was never touched
    assert fake.asked("down") == [] and routed == []


def test_an_image_without_gunicorn_is_refused_before_anything_changes_and_latest_stays_the_serving_image(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]]
) -> None:
    running = recorded("healthy")
    fake = FakeDocker(running, lacks=frozenset({"gunicorn"}))
    routed = deploy_with(fake)
    with pytest.raises(ImageError) as info:
        up(project, timeout=30, smoke_wait=None)
    assert "`gunicorn` is not on the image's PATH" in str(info.value)
    assert "fix: install gunicorn and uvicorn-worker in the image" in str(info.value)
    assert fake.asked("up") == [] and fake.asked("down") == [] and routed == []  # nothing started or stopped
    serving = next(c for c in running if c.service == "app")
    assert fake.asked("tag") == [("tag", serving.image, "checks-rec-app:latest")]


def test_a_migration_that_writes_into_the_read_only_image_is_told_where_to_write(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]]
) -> None:
    output = "sqlite3.OperationalError: unable to open database file: OSError: [Errno 30] Read-only file system"
    fake = FakeDocker(recorded("healthy"), recorded("migrate-failed"), logs=output)
    deploy_with(fake)
    with pytest.raises(MigrationError) as info:
        up(project, timeout=30, smoke_wait=None)
    assert "fix: its log shows a write refused by the image's read-only filesystem" in str(info.value)
    assert "mount a volume where it writes (app/volumes" in str(info.value)


def test_failed_first_migration_removes_what_it_started(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]]
) -> None:
    first = recorded("migrate-failed", ("db", "migrate"))  # a first deploy: no app or Traefik yet
    fake = FakeDocker([], first, logs=MIGRATION_OUTPUT)
    deploy_with(fake)
    with pytest.raises(MigrationError) as info:
        up(project, timeout=30, smoke_wait=None)
    assert str(info.value).startswith(
        "the migration failed (exit code 3), so the app was not started. "
        "Nothing was left running; volumes (data, acme.json) are kept.\n"
    )
    assert fake.asked("down") == [("down", False)]  # containers only, never volumes
    assert fake.asked("up") == [("up", ["migrate"], True)]


def test_successful_migration_then_the_rest_without_rerunning_it(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]]
) -> None:
    # A first deploy: nothing yet, then the migration done (db healthy), then the rest starting, then healthy.
    fake = FakeDocker([], recorded("healthy", ("db", "migrate")), recorded("starting"), recorded("healthy"))
    routed = deploy_with(fake)
    result = up(project, timeout=30, smoke_wait=None)
    # The app is not in the second `up`: switch_app starts it beside the running release.
    assert fake.asked("up") == [("up", ["migrate"], True), ("up", ["db", "traefik"], False)]
    # The migration is recorded before the switch: should the release never go live, the record still holds.
    order = [c[0] for c in fake.calls if c[0] in ("up", "record_migration", "switch_app")]
    assert order == ["up", "up", "record_migration", "switch_app"]
    (migration,) = [c for c in fake.calls if c[0] == "record_migration"]
    (switched,) = [c for c in fake.calls if c[0] == "switch_app"]
    assert migration[1] == switched[1]  # the same release id
    assert (result.url, result.containers) == (f"https://{PROJECT}.composekit.test/", recorded("healthy"))
    assert routed == [f"{PROJECT}.composekit.test"]
    assert (project.out_dir / "compose.yaml").is_file()  # rendered before anything ran


def test_an_image_with_an_entrypoint_running_as_root_deploys_with_both_warnings(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDocker([], recorded("healthy", ("db", "migrate")), recorded("starting"), recorded("healthy"))
    fake.entrypoint = ["/docker-entrypoint.sh"]
    monkeypatch.setattr(FakeDocker, "probe_image", lambda self, image, code, args, env: probe_output(args, uid=0))
    deploy_with(fake)
    said: list[str] = []
    up(project, timeout=30, smoke_wait=None, report=said.append)
    warnings = [line for line in said if line.startswith("warning: the app image")]
    assert warnings == [
        f"warning: the app image {PROJECT}-app:latest (built from the generated Dockerfile) has ENTRYPOINT "
        '["/docker-entrypoint.sh"]: composekit\'s commands (gunicorn, the migration, the processes) reach it as its '
        'arguments, so it must end with `exec "$@"` to run them',
        f"warning: the app image {PROJECT}-app:latest (built from the generated Dockerfile) runs as root; add a user "
        "to the Dockerfile (`RUN useradd --create-home app` then `USER app`), as composekit's generated one does",
    ]


def test_up_smokes_the_deployment_once_it_is_routed(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's up() is the whole of `composekit up`: engine steps, then smoke with the config's options."""
    fake = FakeDocker([], recorded("healthy", ("db", "migrate")), recorded("starting"), recorded("healthy"))
    routed = deploy_with(fake)
    failing = Report("smoke", "https://x/", (CheckResult.fail("health", "answered 502", "look at the app's logs"),))
    smoked: list[tuple[str, float, list[str]]] = []

    def fake_smoke(opts: SmokeOptions, *, wait: float, on_retry: Callable[[Report], None]) -> Report:
        smoked.append((opts.domain, wait, list(routed)))
        return failing

    monkeypatch.setattr(composekit.deploy.compose, "smoke", fake_smoke)
    said: list[str] = []
    result = up(project, timeout=30, smoke_wait=7, report=said.append)
    assert smoked == [(f"{PROJECT}.composekit.test", 7, [f"{PROJECT}.composekit.test"])]  # after the routing wait
    assert (result.smoke, result.passed) == (failing, False)
    assert said[-2:] == [
        f"healthy: https://{PROJECT}.composekit.test/",
        "smoke-testing the deployment (retrying for up to 7s)",
    ]


def test_up_without_smoke_does_not_smoke(
    project: Project, deploy_with: Callable[[FakeDocker], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_with(FakeDocker([], recorded("healthy", ("db", "migrate")), recorded("starting"), recorded("healthy")))
    monkeypatch.setattr(
        composekit.deploy.compose, "smoke", lambda *a, **k: pytest.fail("smoke ran with smoke_wait=None")
    )
    result = up(project, timeout=30, smoke_wait=None)
    assert (result.smoke, result.passed) == (None, True)


# status ------------------------------------------------------------------------------------------------


def test_status_of_a_recorded_stack(project: Project, deploy_with: Callable[[FakeDocker], list[str]]) -> None:
    workers = (DATA / "exec-count-workers.txt").read_text()  # what the count really printed in the app
    fake = FakeDocker(recorded("healthy"), workers=workers)
    deploy_with(fake)
    seen = engine_status.status(project)
    assert (seen.name, seen.url) == (PROJECT, f"https://{PROJECT}.composekit.test/")
    assert [(s.service, s.container, s.status, s.health, s.exit_code, s.workers) for s in seen.services] == [
        ("app", "checks-rec-app-1", "running", "healthy", 0, int(workers)),
        ("db", "checks-rec-db-1", "running", "healthy", 0, None),
        ("migrate", "checks-rec-migrate-1", "exited", None, 0, None),
        ("traefik", "checks-rec-traefik-1", "running", "healthy", 0, None),
    ]
    # Workers are counted in the app's container only, with the script that reads /proc there.
    assert fake.asked("exec") == [("exec", "checks-rec-app-1", ["python3", "-c", engine_status._COUNT_WORKERS])]
    assert seen.as_dict()["services"][0]["workers"] == int(workers)


def _files(status: str, exit_code: int | None) -> ContainerInfo:
    return ContainerInfo("f1", f"{PROJECT}-files-1", "files", status, None, exit_code, 0, None, None, None, "py")


def test_deliver_files_runs_the_one_shot_alone_and_waits_until_it_exited() -> None:
    fake = FakeDocker([], [_files("running", None)], [_files("exited", 0)])
    said: list[str] = []
    steps.deliver_files(fake, fake_deadline(5), said.append, None)
    assert fake.asked("up") == [("up", ["files"], False)]
    assert len(fake.asked("containers")) == 3  # polled until it exited
    assert said == ["delivering gunicorn.conf.py and the database password into the files volume"]


def test_deliver_files_refuses_a_failed_copy_with_its_output() -> None:
    fake = FakeDocker([_files("exited", 1)], logs="files-1  | PermissionError: [Errno 13] /files/.x.tmp")
    with pytest.raises(DockerError) as caught:
        steps.deliver_files(fake, fake_deadline(5), lambda _: None, None)
    assert str(caught.value) == (
        "the files service failed (exit code 1), so the app was not started\n"
        "  command: docker compose up files\n"
        "  docker said:\n"
        "    files-1  | PermissionError: [Errno 13] /files/.x.tmp\n"
        "  fix: its output is above; run `composekit up` again once the cause is fixed"
    )
