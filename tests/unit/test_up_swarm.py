"""`up` in mode: swarm (composekit.deploy.swarm.up_swarm): the order of the steps and what each is given.

The engine's Swarm operations are tested on recorded JSON (test_swarm_recorded.py); here they are replaced by
recorders, so this file checks only the orchestration: ports, render, build, ship, a first deploy with the app at
0 replicas, the migration job BEFORE the app's deploy, convergence, routing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import composekit.deploy.swarm
from composekit.config.project import Project, load_project
from composekit.deploy import up
from composekit.engine import probes
from composekit.engine import steps as engine_steps
from composekit.engine import swarm as engine_swarm
from composekit.engine.docker import Docker
from composekit.engine.swarm import Shipment
from composekit.engine.wait import Deadline
from composekit.errors import DockerError, MigrationError, UserError
from composekit.verify import image_contract

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "swarm" / "fastapi.yaml"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    shutil.copytree(REPO / "stacks" / "fastapi", tmp_path / "app")
    config = (
        FIXTURE.read_text().replace("path: ../../../stacks/fastapi", "path: app").replace("  env_file: app.env\n", "")
    )
    config = config.replace("  ca_certificates: [ca.pem]\n", "")
    (tmp_path / "composekit.yaml").write_text(config)
    return load_project((tmp_path / "composekit.yaml",))


class Recorder(Docker):
    def __init__(self, existing: bool) -> None:
        super().__init__("shop", [])
        self.existing = existing
        self.steps: list[tuple[Any, ...]] = []
        self.auth: list[bool] = []  # registry_auth of each stack deploy (the app's and the migration job's)

    def engine_version(self) -> str:
        return "20.10.24"

    def compose_version(self) -> str:
        return "Docker Compose version v2.40.3"

    def service_inspect(self, service: str) -> dict[str, Any] | None:
        self.steps.append(("inspect", service))
        return {"ID": "x", "Spec": {"Name": service}} if self.existing else None

    def stack_deploy(self, stack: str, file: Path, variables: Any, registry_auth: bool = False) -> str:
        replicas = (variables["COMPOSEKIT_APP_REPLICAS"], variables["COMPOSEKIT_TRAEFIK_REPLICAS"])
        self.steps.append(("deploy", stack, file.name, *replicas))
        self.auth.append(registry_auth)
        return ""

    def push(self, image: str) -> None:
        self.steps.append(("push", image))

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        return [{"ID": "1", "Spec": {"Name": f"{stack}_app"}}, {"ID": "2", "Spec": {"Name": f"{stack}_traefik"}}]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = []
    swarm = engine_swarm
    monkeypatch.setattr(swarm, "require_manager", lambda docker: steps.append(("manager",)))
    monkeypatch.setattr(swarm, "traefik_here", lambda docker, stack, name: None)
    monkeypatch.setattr(engine_steps, "check_ports", lambda p, running, docker: steps.append(("ports",)))
    monkeypatch.setattr(swarm, "build_image", lambda p, docker, image, on_line: steps.append(("build", image)))
    monkeypatch.setattr(
        image_contract,
        "check_image",
        lambda p, docker, report, image, server: steps.append(("image", image, server)),
    )

    def ship(docker: Docker, image: str, nodes: Any, source: str, report: Any) -> list[Shipment]:
        steps.append(("ship", image))
        return [Shipment("n2", 1, "shipped")]

    monkeypatch.setattr(swarm, "ship_image", ship)

    def job(
        docker: Recorder,
        stack: str,
        service: str,
        file: Path,
        variables: Any,
        deadline: Any,
        report: Any,
        registry_auth: bool = False,
    ) -> Any:
        docker.steps.append(("job", service, file.name, variables["COMPOSEKIT_RELEASE"]))
        docker.auth.append(registry_auth)

        class Done:
            seconds = 1.0

        return Done()

    monkeypatch.setattr(swarm, "run_job", job)
    monkeypatch.setattr(
        swarm,
        "wait_converged",
        lambda docker, name, before, deadline, what: (
            docker.steps.append(("converged", name, before is not None)) or type("S", (), {"replicas": 3})()
        ),
    )
    monkeypatch.setattr(probes, "wait_routed", lambda p, d, e: steps.append(("routed",)))
    monkeypatch.setattr(composekit.deploy.swarm, "project_release_id", lambda project, stack=None: "r1")
    monkeypatch.setattr(composekit.deploy.swarm, "deploy_lock", _no_lock)
    return steps


class _no_lock:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def test_a_first_deploy_creates_the_stack_at_0_replicas_then_migrates_then_deploys_the_app(
    project: Project, recorded: list[tuple[Any, ...]]
) -> None:
    docker = Recorder(existing=False)
    said: list[str] = []
    result = up(project, docker=docker, smoke_wait=None, report=said.append)
    assert result.url == "https://shop.example.com/"
    # The image is checked right after the build, before it goes to the nodes; no app/workers: uvicorn runs it.
    assert recorded == [
        ("manager",),
        ("ports",),
        ("build", "shop-app:r1"),
        ("image", "shop-app:r1", "uvicorn"),
        ("ship", "shop-app:r1"),
        ("routed",),
    ]
    assert docker.steps == [
        ("inspect", "shop_app"),
        ("deploy", "shop", "stack.yml", "0", "0"),
        ("converged", "shop_traefik", False),
        ("converged", "shop_app", False),
        ("job", "migrate", "migrate.yml", "r1"),
        ("deploy", "shop", "stack.yml", "3", "1"),
        ("converged", "shop_traefik", True),
        ("converged", "shop_app", True),
    ]
    assert (project.out_dir / "stack.yml").is_file()
    assert "first deploy: creating the stack with the app and Traefik at 0 replicas" in said


def test_a_later_deploy_migrates_first_and_never_scales_the_app_down(
    project: Project, recorded: list[tuple[Any, ...]]
) -> None:
    docker = Recorder(existing=True)
    up(project, docker=docker, smoke_wait=None)
    assert [s for s in docker.steps if s[0] in ("deploy", "job")] == [
        ("job", "migrate", "migrate.yml", "r1"),
        ("deploy", "shop", "stack.yml", "3", "1"),
    ]


def test_without_a_registry_no_login_is_handed_to_the_nodes(project: Project, recorded: list[tuple[Any, ...]]) -> None:
    docker = Recorder(existing=False)
    up(project, docker=docker, smoke_wait=None)
    assert docker.auth == [False, False, False]


def test_with_a_registry_the_image_is_pushed_and_every_deploy_hands_the_login_to_the_nodes(
    project: Project, recorded: list[tuple[Any, ...]]
) -> None:
    (project.root / "registry.yaml").write_text("registry: registry.example.com/team\n")
    with_registry = load_project((project.root / "composekit.yaml", project.root / "registry.yaml"))
    docker = Recorder(existing=False)
    up(with_registry, docker=docker, smoke_wait=None)
    image = "registry.example.com/team/shop-app:r1"
    assert ("build", image) in recorded and not [s for s in recorded if s[0] == "ship"]
    assert [s for s in docker.steps if s[0] in ("push", "deploy", "job")] == [
        ("push", image),
        ("deploy", "shop", "stack.yml", "0", "0"),
        ("job", "migrate", "migrate.yml", "r1"),
        ("deploy", "shop", "stack.yml", "3", "1"),
    ]
    # The first deploy, the migration job and the app's deploy: each node pulls with this client's login.
    assert docker.auth == [True, True, True]


def test_a_failed_migration_job_stops_before_the_app_is_deployed(
    project: Project, recorded: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: Any) -> Any:
        raise MigrationError("the migration job shop_migrate failed")

    monkeypatch.setattr(engine_swarm, "run_job", fails)
    docker = Recorder(existing=True)
    with pytest.raises(MigrationError):
        up(project, docker=docker, smoke_wait=None)
    assert not [s for s in docker.steps if s[0] == "deploy"]


@pytest.mark.parametrize("option", ["build_local", "rollback_on_error"])
def test_compose_only_options_are_refused_in_swarm_mode(project: Project, option: str) -> None:
    with pytest.raises(UserError) as exc:
        up(
            project,
            docker=Recorder(existing=True),
            smoke_wait=None,
            deadline=Deadline(10),
            build_local=option == "build_local",
            rollback_on_error=option == "rollback_on_error",
        )
    flag = "--" + option.replace("_", "-")
    assert str(exc.value) == (
        f"up {flag} applies to mode: compose only: in mode: swarm composekit builds on the manager and ships the "
        "image to the nodes, and Swarm rolls a failed update back by itself"
    )


def test_with_a_registry_the_image_is_pushed_not_shipped(
    project: Project, recorded: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (project.root / "composekit.yaml").read_text() + "registry: registry.example.com/team\n"
    (project.root / "composekit.yaml").write_text(text)
    project = load_project((project.root / "composekit.yaml",))
    docker = Recorder(existing=True)
    pushed: list[str] = []
    docker.push = pushed.append  # type: ignore[method-assign,assignment]
    up(project, docker=docker, smoke_wait=None)
    assert pushed == ["registry.example.com/team/shop-app:r1"]
    assert ("build", "registry.example.com/team/shop-app:r1") in recorded
    assert not [s for s in recorded if s[0] == "ship"]


def test_stack_deploy_hands_this_clients_registry_login_to_the_nodes_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []
    docker = Docker("shop", [])

    def run(summary: str, args: list[str], hint: str = "", env: Any = None) -> str:
        seen.append(args)
        return ""

    monkeypatch.setattr(docker, "_docker", run)
    docker.stack_deploy("shop", Path("/p/stack.yml"), {})
    docker.stack_deploy("shop", Path("/p/stack.yml"), {}, registry_auth=True)
    deploy = ["stack", "deploy", "--compose-file", "/p/stack.yml", "--resolve-image", "never"]
    assert seen == [[*deploy, "shop"], [*deploy, "--with-registry-auth", "shop"]]


def _listing(monkeypatch: pytest.MonkeyPatch, answers: list[str | list[dict[str, Any]]]) -> tuple[Docker, list[str]]:
    """A Docker whose list calls name tasks t1 and t2 and whose inspect calls answer ``answers`` in turn (a str:
    the inspect fails with that as Docker's output)."""
    calls: list[str] = []
    docker = Docker("shop", [])

    def run(summary: str, args: list[str], hint: str = "", env: Any = None) -> str:
        calls.append("list")
        return "t1\nt2\n"

    def inspect(summary: str, kind: list[str], ids: list[str]) -> list[dict[str, Any]]:
        calls.append("inspect")
        answer = answers.pop(0)
        if isinstance(answer, str):
            raise DockerError(summary, ["docker", *kind, *ids], answer)
        return answer

    monkeypatch.setattr(docker, "_docker", run)
    monkeypatch.setattr(docker, "_inspect", inspect)
    return docker, calls


def test_a_task_pruned_between_listing_and_inspecting_is_listed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in test_swarm: Swarm pruned an old task of the app between `service ps` and `inspect`, and `up` failed.
    gone = "Error response from daemon: task zo7q5q6ngvoug1fwdj1ta8sfs not found"
    docker, calls = _listing(monkeypatch, [gone, [{"ID": "t1"}, {"ID": "t2"}]])
    assert docker.service_tasks("shop_app") == [{"ID": "t1"}, {"ID": "t2"}]
    assert calls == ["list", "inspect", "list", "inspect"]


def test_an_object_that_keeps_vanishing_or_another_error_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = "Error response from daemon: task t2 not found"
    docker, calls = _listing(monkeypatch, [gone, gone, gone])
    with pytest.raises(DockerError, match="cannot inspect the tasks of shop_app"):
        docker.service_tasks("shop_app")
    assert calls.count("inspect") == 3
    docker, calls = _listing(monkeypatch, ["Error response from daemon: This node is not a swarm manager."])
    with pytest.raises(DockerError, match="cannot inspect the Swarm's nodes"):
        docker.nodes()
    assert calls == ["list", "inspect"]
