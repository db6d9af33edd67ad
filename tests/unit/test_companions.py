"""processes/ and accessories/: their validation messages word for word, their services in compose.yaml (the app's
confinement, no port, no front network, the migration first), Redis's password in no rendered file, mode: swarm's
refusal, and deploy_processes' start-first replacement on a fake engine."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config import parse_config
from composekit.config.project import Project, load_project
from composekit.engine.companions import deploy_processes
from composekit.engine.docker import ContainerInfo
from composekit.engine.steps import compose_secrets
from composekit.engine.wait import Deadline
from composekit.errors import ConfigError, HealthTimeoutError
from composekit.render.companions import redis_acl
from composekit.render.stack import render_stack
from composekit.scaffold.plan import plan_init
from composekit.scaffold.write import write_plan

from .golden import assert_matches_golden

MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
PASSWORD = "r3dis-Pass:@/%word"
CONFIG = """\
name: shop
domain: shop.example.com
app:
  module: app.main:app
  secrets: {REDIS_PASSWORD: secrets/redis_password}
  volumes: {data: /data}
migrate: {command: python -m app.migrate}
database: {password_file: secrets/db_password}
processes:
  worker: {command: "arq app.worker.WorkerSettings", health_command: "python -m app.health", stop_grace: 90,
           replicas: 2, cpus: 0.5, memory: 256M}
  beat: python -m app.beat
accessories:
  redis: {kind: redis, password_file: secrets/redis_password}
  search: {image: "getmeili/meilisearch:v1.8", secrets: {key: secrets/meili}, volumes: {data: /meili_data},
           environment: {MEILI_ENV: production}, healthcheck: [curl, -f, "http://127.0.0.1:7700/health"]}
"""


def error_of(extra: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, **extra})
    return str(info.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"processes": {"Worker": "x"}},
            'processes: expected process names of lowercase letters, digits and "-" (a DNS label, at most 63 '
            'characters), got "Worker"',
        ),
        (
            {"processes": {"migrate": "x"}},
            'processes: migrate: "migrate" is one of composekit\'s own services (app, migrate, db, traefik, routes, '
            "files, socket-proxy, scheduler, backup, backup-db); give the process another name",
        ),
        (
            {"processes": {"worker": {"command": "arq 'app"}}},
            "processes/worker/command: expected a command line whose quotes are closed (no closing quotation), or a "
            'list of arguments, got "arq \'app"',
        ),
        (
            {"processes": {"worker": {"command": "a", "stop_grace": 0}}},
            "processes/worker/stop_grace: expected a number of seconds from 1 to 3600, got 0",
        ),
        (
            {"processes": {"worker": {"command": "a", "replicas": 0}}},
            "processes/worker/replicas: expected a positive integer, got 0",
        ),
        (
            {"processes": {"worker": {"command": "a", "memory": "lots"}}},
            'processes/worker/memory: expected a size such as "512M" or "1G", got "lots"',
        ),
        (
            {"processes": {"worker": {"cmd": "a"}}},
            "processes/worker/command: required key is missing\ncomposekit.yaml: "
            "processes/worker/cmd: unknown key (expected one of: command, replicas, cpus, memory, health_command, "
            "stop_grace)",
        ),
        (
            {"accessories": {"redis": {"kind": "redis"}}},
            "accessories/redis: password_file: required with kind: redis (the file that holds Redis's password, "
            "such as secrets/redis_password; keep it out of git)",
        ),
        (
            {"accessories": {"redis": {"kind": "redis", "password_file": "p", "command": "redis-server"}}},
            "accessories/redis: command: kind: redis sets it; remove the key, or drop kind: redis and describe the "
            "accessory yourself",
        ),
        (
            {"accessories": {"cache": {"command": "memcached"}}},
            'accessories/cache: image: required (the accessory\'s image, such as "memcached:1.6"), or set kind: redis',
        ),
        (
            {"accessories": {"cache": {"image": "memcached:1.6", "environment": {"CACHE_TOKEN": "x"}}}},
            "accessories/cache/environment: CACHE_TOKEN looks like a secret (its name ends in TOKEN); put the value "
            "in a file, list it under secrets and point the image at /run/secrets/<name> (such as "
            "POSTGRES_PASSWORD_FILE)",
        ),
        (
            {"accessories": {"cache": {"image": "memcached:1.6", "environment": {"CACHE_URL": "redis://u:pw@r/0"}}}},
            "accessories/cache/environment: CACHE_URL: the value is a URL with credentials (user:password@); put the "
            "value in a file, list it under secrets and point the image at /run/secrets/<name> (such as "
            "POSTGRES_PASSWORD_FILE)",
        ),
        (
            {"processes": {"worker": "a"}, "accessories": {"worker": {"image": "redis:7"}}},
            "accessories: worker: is also the name of a process; give the accessory another name",
        ),
        (
            {
                "app": {"module": "app.main:app", "volumes": {"redis-data": "/r"}},
                "accessories": {"redis": {"kind": "redis", "password_file": "p"}},
            },
            'app/volumes: "redis-data" is the volume of accessory redis; give your volume another name',
        ),
        (
            {"mode": "swarm", "processes": {"worker": "a"}},
            "processes: mode: swarm does not deploy the app's companions yet (processes, accessories and schedules "
            "run in mode: compose only); remove the key or use mode: compose (docs/swarm.md#companions)",
        ),
        (
            {"mode": "swarm", "accessories": {"redis": {"kind": "redis", "password_file": "p"}}},
            "accessories: mode: swarm does not deploy the app's companions yet (processes, accessories and "
            "schedules run in mode: compose only); remove the key or use mode: compose (docs/swarm.md#companions)",
        ),
    ],
)
def test_errors_name_the_key_path(extra: dict[str, Any], message: str) -> None:
    assert error_of(extra) == f"composekit.yaml: {message}"


def test_an_accessory_may_set_a_variable_composekit_sets_for_the_app() -> None:
    """composekit's own variables (APP_PORT, ...) are the app's; another image may use the same names."""
    config = parse_config(
        {**MINIMAL, "accessories": {"cache": {"image": "memcached:1.6", "environment": {"APP_PORT": 1}}}}
    )
    assert config.accessories["cache"].environment == {"APP_PORT": "1"}


def test_a_bare_string_is_the_command() -> None:
    config = parse_config({**MINIMAL, "processes": {"worker": "arq app.worker.WorkerSettings"}})
    worker = config.processes["worker"]
    assert (worker.command, worker.replicas, worker.stop_grace, worker.health_command) == (
        "arq app.worker.WorkerSettings",
        1,
        30,
        None,
    )


def project_in(tmp_path: Path) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "redis_password").write_text(PASSWORD + "\n")
    (tmp_path / "secrets" / "db_password").write_text("db-pw-value\n")
    (tmp_path / "secrets" / "meili").write_text("meili-master-key-value\n")
    (tmp_path / "composekit.yaml").write_text(CONFIG)
    return load_project((tmp_path / "composekit.yaml",))


def test_processes_are_the_apps_image_confined_without_port_or_front_network(tmp_path: Path) -> None:
    doc = yaml.safe_load(render_stack(project_in(tmp_path)).compose)
    app, worker, beat = doc["services"]["app"], doc["services"]["worker"], doc["services"]["beat"]
    for key in ("image", "cap_drop", "read_only", "tmpfs", "security_opt", "logging", "volumes"):
        assert worker[key] == app[key], key
    # The app's whole environment, as the migration gets it (render/services.py: one base for the app's processes).
    assert worker["environment"] == app["environment"]
    assert worker["command"][-3:] == ["--", "arq", "app.worker.WorkerSettings"]
    assert worker["command"][:4] == app["command"][:4]  # runtime/secret_env.py: the app's secrets, same way
    assert "ports" not in worker and "web" not in worker["networks"]
    assert worker["networks"] == ["db", "accessories", "processes"]
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert worker["stop_grace_period"] == "90s" and worker["restart"] == "always"
    assert worker["deploy"] == {"replicas": 2, "resources": {"limits": {"cpus": "0.5", "memory": "256m", "pids": 4096}}}
    assert worker["healthcheck"]["test"][-4:] == ["--", "python", "-m", "app.health"]
    assert beat["healthcheck"] == {"disable": True}
    assert "accessories" in app["networks"] and doc["networks"]["accessories"] == {"internal": True}
    assert doc["networks"]["processes"] == {}


def test_accessories_are_internal_with_their_volumes_and_secrets(tmp_path: Path) -> None:
    doc = yaml.safe_load(render_stack(project_in(tmp_path)).compose)
    redis, search = doc["services"]["redis"], doc["services"]["search"]
    assert redis["image"] == "redis:7" and redis["networks"] == ["accessories"] and "ports" not in redis
    assert redis["command"][:3] == ["redis-server", "--aclfile", "/run/secrets/redis.acl"]
    assert redis["secrets"] == [{"source": "redis_acl", "target": "redis.acl"}]
    assert redis["volumes"] == ["redis-data:/data"]
    assert search["volumes"] == ["search-data:/meili_data"] and search["secrets"] == [
        {"source": "search_key", "target": "key"}
    ]
    assert search["healthcheck"]["test"] == ["CMD", "curl", "-f", "http://127.0.0.1:7700/health"]
    assert {"redis-data", "search-data"} <= set(doc["volumes"])
    assert set(doc["secrets"]) >= {"redis_acl", "search_key"}
    assert all(set(spec) == {"environment"} for spec in doc["secrets"].values())


def test_no_password_or_its_hash_in_a_rendered_file(tmp_path: Path) -> None:
    stack = render_stack(project_in(tmp_path))
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    for name, content in {**stack.files, **stack.configs}.items():
        for value in (PASSWORD, digest, "meili-master-key-value", "db-pw-value"):
            assert value not in content, f"{name} holds a secret"


def test_compose_gets_redis_an_acl_with_the_hash_and_the_versions(tmp_path: Path) -> None:
    values = compose_secrets(project_in(tmp_path))
    acl = next(v for k, v in values.items() if k.startswith("COMPOSEKIT_ACCESSORY_REDIS_ACL_"))
    assert acl == redis_acl(PASSWORD)
    assert f"user default on #{hashlib.sha256(PASSWORD.encode()).hexdigest()} ~* &* +@all" in acl
    assert PASSWORD not in acl
    assert next(v for k, v in values.items() if k.startswith("COMPOSEKIT_ACCESSORY_SEARCH_KEY_")) == (
        "meili-master-key-value\n"
    )
    # A changed secret changes the accessory's label (recreated), nothing else of the document.
    doc = yaml.safe_load(render_stack(project_in(tmp_path)).compose)
    label = doc["services"]["redis"]["labels"]["composekit.secrets-version"]
    version_variable = label.removeprefix("${").removesuffix(":-}")
    before = values[version_variable]
    (tmp_path / "secrets" / "redis_password").write_text("another\n")
    assert compose_secrets(load_project((tmp_path / "composekit.yaml",)))[version_variable] != before


class FakeDocker:
    """Containers of the processes on a fake clock: new ones turn healthy after ``healthy_after`` seconds (never
    when None; unhealthy at ``unhealthy_at``)."""

    def __init__(self, clock: list[float], old: int = 1, unhealthy_at: float | None = None) -> None:
        self.clock = clock
        self.unhealthy_at = unhealthy_at
        self.calls: list[str] = []
        self.items: list[ContainerInfo] = [self._info(f"shop-worker-{i + 1}", "sha256:old") for i in range(old)]
        self.started_at: dict[str, float] = {}

    def _info(self, name: str, image: str, health: str | None = "healthy") -> ContainerInfo:
        return ContainerInfo(name, name, name.split("-")[1], "running", health, None, 0, None, None, 1, image)

    def image_id(self, image: str) -> str:
        return "sha256:new"

    def config_hash(self, service: str) -> str:
        return "hash"

    def container_labels(self, name: str) -> dict[str, str]:
        return {"com.docker.compose.config-hash": "hash"}

    def containers(self) -> list[ContainerInfo]:
        out = []
        for c in self.items:
            if c.id in self.started_at:
                elapsed = self.clock[0] - self.started_at[c.id]
                bad = self.unhealthy_at is not None and elapsed >= self.unhealthy_at
                c = replace(c, health="unhealthy" if bad else ("healthy" if elapsed >= 6 else "starting"))
            out.append(c)
        return out

    def start_beside(self, service: str, count: int, on_line: Any = None) -> None:
        self.calls.append(f"start_beside {service} {count}")
        for i in range(len(self.items), count):
            c = self._info(f"shop-{service}-{i + 1}", "sha256:new", "starting")
            self.items.append(c)
            self.started_at[c.id] = self.clock[0]

    def remove_now(self, name: str) -> None:
        self.calls.append(f"remove_now {name}")
        self.items = [c for c in self.items if c.name != name]

    def stop_and_remove(self, name: str) -> None:
        self.calls.append(f"stop_and_remove {name}")
        self.items = [c for c in self.items if c.name != name]

    def tag(self, image: str, tag: str) -> None:
        self.calls.append(f"tag {image} {tag}")

    def container_logs(self, name: str, tail: int) -> str:
        return f"log of {name}"

    def final_logs(self, name: str, tail: int) -> str:
        return self.container_logs(name, tail)


def deadline(clock: list[float], timeout: float = 120) -> Deadline:
    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Deadline(timeout, clock=lambda: clock[0], sleep=sleep)


def worker_project(tmp_path: Path) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(
        "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n"
        "processes: {worker: {command: python -m app.worker, health_command: python -m app.health}}\n"
    )
    return load_project((tmp_path / "composekit.yaml",))


def test_new_processes_start_beside_the_old_which_stop_once_the_new_are_healthy(tmp_path: Path) -> None:
    clock = [0.0]
    docker = FakeDocker(clock)
    changes = deploy_processes(worker_project(tmp_path), docker, deadline(clock), "r2")  # type: ignore[arg-type]
    assert docker.calls == ["start_beside worker 2", "stop_and_remove shop-worker-1"]
    assert [c.name for c in changes[0].new] == ["shop-worker-2"] and clock[0] >= 6
    assert [c.name for c in docker.containers()] == ["shop-worker-2"]


def test_processes_of_this_release_are_left_alone(tmp_path: Path) -> None:
    clock = [0.0]
    docker = FakeDocker(clock, old=0)
    docker.items = [docker._info("shop-worker-1", "sha256:new")]
    assert deploy_processes(worker_project(tmp_path), docker, deadline(clock), "r2") == []  # type: ignore[arg-type]
    assert docker.calls == []


def test_an_unhealthy_process_fails_before_the_switch_and_leaves_the_old_running(tmp_path: Path) -> None:
    clock = [0.0]
    docker = FakeDocker(clock, unhealthy_at=3)
    with pytest.raises(HealthTimeoutError) as info:
        deploy_processes(
            worker_project(tmp_path),
            docker,  # type: ignore[arg-type]
            deadline(clock),
            "r2",
            serving_image="sha256:old",
        )
    assert docker.calls == ["start_beside worker 2", "remove_now shop-worker-2", "tag sha256:old shop-app:latest"]
    assert [c.name for c in docker.containers()] == ["shop-worker-1"]
    message = str(info.value)
    assert message.startswith(
        "the processes of release r2 did not turn healthy (it failed); last seen: worker (shop-worker-2): running, "
        "health unhealthy, exit code None, restarted 0. Their new containers were removed; the old ones were never "
        "stopped and the release that was serving still serves.\nLast log lines of shop-worker-2:\n    log of "
        "shop-worker-2\n"
    ), message
    assert message.endswith(
        "fix: make the process start and its health_command exit 0 (`composekit logs NAME` shows "
        "its output), then run `composekit up` again"
    )


def test_a_process_writing_into_the_read_only_image_is_told_where_to_write(tmp_path: Path) -> None:
    clock = [0.0]
    docker = FakeDocker(clock, unhealthy_at=3)
    docker.container_logs = lambda name, tail: "OSError: [Errno 30] Read-only file system: 'queue.db'"  # type: ignore[method-assign]
    with pytest.raises(HealthTimeoutError) as info:
        deploy_processes(worker_project(tmp_path), docker, deadline(clock), "r2")  # type: ignore[arg-type]
    assert "fix: its log shows a write refused by the image's read-only filesystem" in str(info.value)


# the fastapi-worker template ----------------------------------------------------------------------------------------

TEMPLATE = Path(__file__).resolve().parents[2] / "stacks" / "fastapi-worker"


def test_the_worker_template_matches_its_golden_files_and_leaks_no_password(tmp_path: Path) -> None:
    copy = tmp_path / "fastapi-worker"
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns("__pycache__", ".composekit"))
    (copy / "secrets").mkdir()
    (copy / "secrets" / "db_password").write_text("db-not-in-any-rendered-file\n")
    (copy / "secrets" / "redis_password").write_text("redis-not-in-any-rendered-file\n")
    stack = render_stack(load_project((copy / "composekit.yaml",)))
    rendered = "".join(stack.files.values()) + "".join(stack.configs.values())
    assert "not-in-any-rendered-file" not in rendered
    assert hashlib.sha256(b"redis-not-in-any-rendered-file").hexdigest() not in rendered
    assert_matches_golden(stack, "fastapi-worker")


def test_init_worker_template_into_an_empty_directory(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    plan = plan_init(root, template="fastapi-worker", password=lambda: "generated")
    write_plan(plan)
    written = {f.path for f in plan.files}
    assert {"app/worker.py", "app/queue.py", "secrets/db_password", "secrets/redis_password"} <= written
    assert (root / "secrets" / "redis_password").stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load((root / "composekit.yaml").read_text())
    assert config["processes"] == {
        "worker": {
            "command": "python3 -m app.worker",
            "health_command": "python3 -m app.worker_health",
            "stop_grace": 60,
        }
    }
    assert config["accessories"] == {"redis": {"kind": "redis", "password_file": "secrets/redis_password"}}
    assert config["app"]["secrets"] == {"REDIS_PASSWORD": "secrets/redis_password"}
    assert config["app"]["environment"] == {"REDIS_HOST": "redis"}
    assert load_project((root / "composekit.yaml",)).config.processes["worker"].stop_grace == 60


def test_init_worker_template_gives_an_existing_app_redis_but_no_process(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    (root / "requirements.txt").write_text("fastapi\n")
    plan = plan_init(root, template="fastapi-worker", password=lambda: "generated")
    config = yaml.safe_load(next(f.content for f in plan.files if f.path == "composekit.yaml"))
    assert "processes" not in config
    assert config["accessories"]["redis"]["kind"] == "redis"
    assert "secrets/redis_password" in {f.path for f in plan.files}


def test_a_missing_accessory_secret_file_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(
        "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n"
        "accessories:\n  redis: {kind: redis, password_file: secrets/redis_password}\n"
        "  cache: {image: 'memcached:1.6', secrets: {token: secrets/cache_token}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_project((tmp_path / "composekit.yaml",))
    assert info.value.problems == [
        "composekit.yaml: accessories/cache/secrets/token: 'secrets/cache_token' does not exist; create it (such as "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > secrets/cache_token`) and keep it out of git",
        "composekit.yaml: accessories/redis/password_file: 'secrets/redis_password' does not exist; create it (such "
        "as `python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > secrets/redis_password`) and keep it "
        "out of git",
    ]


# mode: swarm refuses them before anything changes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "companions",
    [
        {"processes": {"worker": "python -m app.worker"}},
        {"schedules": {"cleanup": {"cron": "*/5 * * * *", "command": "python -m app.cleanup"}}},
        {"accessories": {"cache": {"image": "memcached:1.6"}}},
    ],
    ids=["processes", "schedules", "accessories"],
)
@pytest.mark.parametrize("command", [["up"], ["render"], ["rollback"]])
def test_swarm_mode_refuses_companions_before_reaching_the_engine_or_writing_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, companions: dict[str, Any], command: list[str]
) -> None:
    from typer.testing import CliRunner

    import composekit.cli.releases
    import composekit.cli.stack
    from composekit.cli import app

    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump({**MINIMAL, "mode": "swarm", **companions}))
    before = sorted(p.name for p in tmp_path.iterdir())
    reached: list[str] = []

    def engine_for(*args: Any, **kwargs: Any) -> Any:
        reached.append("engine_for")
        raise AssertionError("the engine was reached")

    for module in (composekit.cli.stack, composekit.cli.releases):
        monkeypatch.setattr(module, "engine_for", engine_for)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, command)
    key = next(iter(companions))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output == (
        f"error: {tmp_path / 'composekit.yaml'}: {key}: mode: swarm does not deploy the app's companions yet "
        "(processes, accessories and schedules run in mode: compose only); remove the key or use mode: compose "
        "(docs/swarm.md#companions)\n"
    )
    assert reached == [] and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("accessory", "change"),
    [
        ("search", "  search: {environment: {MEILI_ENV: development}}\n"),
        ("search", "  search: {image: 'getmeili/meilisearch:v1.9'}\n"),
        ("redis", "  redis: {environment: {REDIS_EXTRA: '1'}}\n"),
    ],
    ids=["search-environment", "search-image", "redis-environment"],
)
def test_a_change_to_an_accessorys_own_keys_changes_its_service_only(
    tmp_path: Path, accessory: str, change: str
) -> None:
    """Compose recreates exactly the services whose definition changed (`up` passes every accessory): a change to
    one accessory's keys must change that service and nothing else of compose.yaml."""
    before = yaml.safe_load(render_stack(project_in(tmp_path)).compose)
    (tmp_path / "change.yaml").write_text("accessories:\n" + change)
    changed = load_project((tmp_path / "composekit.yaml", tmp_path / "change.yaml"))
    after = yaml.safe_load(render_stack(changed).compose)
    assert after["services"][accessory] != before["services"][accessory]
    differ = sorted(name for name in before["services"] if after["services"][name] != before["services"][name])
    assert differ == [accessory]
    assert {k: v for k, v in after.items() if k != "services"} == {k: v for k, v in before.items() if k != "services"}


# a failed app switch puts the processes and the scheduler back -------------------------------------------------------


class SwitchFails:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("switch_app")
        raise HealthTimeoutError("the new release r2 (shop-app-2) was removed: it failed")


def test_a_failed_switch_puts_the_processes_and_the_scheduler_back_and_raises_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import composekit.deploy.compose
    import composekit.engine.companions

    switch = SwitchFails()
    monkeypatch.setattr(composekit.deploy.compose, "switch_app", switch)
    monkeypatch.setattr(
        composekit.engine.companions, "deploy_processes", lambda *a: switch.calls.append(f"processes {a[3]} {a[6]}")
    )
    monkeypatch.setattr(
        composekit.engine.companions, "deploy_scheduler", lambda *a: switch.calls.append(f"scheduler {a[2]}")
    )
    docker = FakeDocker([0.0])
    said: list[str] = []
    with pytest.raises(HealthTimeoutError, match="the new release r2"):
        composekit.deploy.compose._switch_companions_too(
            worker_project(tmp_path),
            docker,  # type: ignore[arg-type]
            Deadline(1),
            "r2",
            said.append,
            None,
            ("r1", "sha256:old"),
        )
    assert switch.calls == ["switch_app", "processes r1 sha256:old", "scheduler r1"]
    assert docker.calls == ["tag sha256:old shop-app:latest"]
    assert said == ["putting the processes and the scheduler back on release r1, which still serves"]
    # Nothing moved (None): nothing is put back.
    switch.calls.clear()
    with pytest.raises(HealthTimeoutError):
        composekit.deploy.compose._switch_companions_too(
            worker_project(tmp_path),
            docker,  # type: ignore[arg-type]
            Deadline(1),
            "r2",
            said.append,
            None,
            None,
        )
    assert switch.calls == ["switch_app"]


def test_rollback_on_error_puts_the_processes_and_the_scheduler_back_before_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --rollback-on-error`: a failed self-check switches back, the processes and the scheduler first."""
    import json

    import composekit.deploy.self_check
    from composekit.engine.probes import ProbeReport
    from composekit.engine.switch import SwitchResult
    from composekit.errors import SelfCheckError

    calls: list[str] = []

    class Engine:
        def exec(self, name: str, argv: list[str]) -> str:  # the release history
            return json.dumps(
                [{"id": "r1", "image": "sha256:old", "created": "2026-11-29T10:00:00Z", "config_hash": "h"}]
            )

        def containers(self) -> list[ContainerInfo]:
            return [ContainerInfo("id", "shop-routes-1", "routes", "running", None, None, 0, None, None, 1, "py")]

        def tag(self, image: str, tag: str) -> None:
            calls.append(f"tag {image} {tag}")

    monkeypatch.setattr(composekit.deploy.self_check, "deploy_processes", lambda *a: calls.append(f"processes {a[3]}"))
    monkeypatch.setattr(composekit.deploy.self_check, "deploy_scheduler", lambda *a: calls.append(f"scheduler {a[2]}"))

    def switch_app(*a: Any) -> SwitchResult:
        calls.append(f"switch_app {a[3]}")
        return SwitchResult("r1", ["shop-app-3"], True, 3.0)

    monkeypatch.setattr(composekit.deploy.self_check, "switch_app", switch_app)
    failed = ProbeReport(sent=40, failed=3, slowest_ms=812.4, failures=["HTTP 500"])
    with pytest.raises(SelfCheckError, match="switched back to release r1"):
        composekit.deploy.self_check.self_check(
            worker_project(tmp_path),
            Engine(),  # type: ignore[arg-type]
            Deadline(60),
            SwitchResult("r2", ["shop-app-2"], True, 3.2, "h2", failed, "sha256:old"),
            lambda _: None,
            None,
            True,
        )
    assert calls == ["tag sha256:old shop-app:latest", "processes r1", "scheduler r1", "switch_app r1"]
