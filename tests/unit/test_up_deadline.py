"""`up` with a fake clock and a fake Docker: one --timeout for the whole `up` (#7.5), volume owners fixed
before the migration (#7.6), and `status` surviving a failed worker count (#7.10)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.deploy import up
from composekit.engine import probes, steps
from composekit.engine.docker import ContainerInfo
from composekit.engine.status import status
from composekit.engine.steps import fix_volume_owners
from composekit.engine.target import Engine
from composekit.engine.wait import Deadline
from composekit.errors import DockerError, HealthTimeoutError, HttpCheckError

from .image_probe import probe_output


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def container(
    service: str,
    status: str = "running",
    health: str | None = None,
    exit_code: int | None = None,
    restart_count: int = 0,
) -> ContainerInfo:
    return ContainerInfo(
        id=f"id-{service}",
        name=f"shop-{service}-1",
        service=service,
        status=status,
        health=health,
        exit_code=exit_code,
        restart_count=restart_count,
        started_at=None,
        finished_at=None,
        pid=1,
        image="shop-app:latest",
    )


class FakeDocker:
    """What `up` asks of Docker, on a fake clock: the build takes 30 s, the migration exits 0 at 70 s."""

    def __init__(
        self, clock: Clock, user: str = "app", migration_done_after: float = 40, healthy: bool = False
    ) -> None:
        self.clock = clock
        self.user = user
        self.migration_done_after = migration_done_after
        self.healthy = healthy
        self.calls: list[str] = []
        self.migration_started: float | None = None
        self.chowns: list[tuple[str, list[str], dict[str, str]]] = []
        self.exec_error: Exception | None = None
        self.engine = Engine.default()
        self.compose_environment: dict[str, str] = {}

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        return "lock-id"

    def remove_lock(self, container_id: str) -> bool:
        return True

    def engine_version(self) -> str:
        return "20.10.24"

    def compose_version(self) -> str:
        return "v2.40.3"

    def build(self, on_line: Any = None) -> None:
        self.calls.append("build")
        self.clock.now += 30

    def probe_image(self, image: str, code: str, args: list[str], environment: dict[str, str]) -> str:
        self.calls.append("probe_image")
        return probe_output(args)

    def image_entrypoint(self, image: str) -> list[str]:
        return []

    def image_user(self, image: str) -> str:
        self.calls.append(f"image_user {image}")
        return self.user

    def ensure_volume(self, key: str) -> str:
        self.calls.append(f"ensure_volume {key}")
        return f"shop_{key}"

    def run_chown(self, image: str, argv: list[str], volumes: dict[str, str]) -> str:
        self.calls.append("run_chown")
        self.chowns.append((image, argv, volumes))
        return "\n".join(f"chowned {p} 0:0 999:999" if p == "/data" else f"kept {p}" for p in volumes.values())

    def image_id(self, image: str) -> str:
        return "sha256:new"

    def config_hash(self, service: str) -> str:
        return "hash"

    def start_beside(self, service: str, count: int, on_line: Any = None) -> None:
        self.calls.append(f"start_beside {service} {count}")

    def remove_now(self, name: str) -> None:
        self.calls.append(f"remove_now {name}")

    def container_logs(self, name: str, tail: int) -> str:
        return f"{name} log line"

    def final_logs(self, name: str, tail: int) -> str:
        return self.container_logs(name, tail)

    def tag(self, image: str, tag: str) -> None:
        self.calls.append(f"tag {image} {tag}")

    def up(self, services: list[str] | None = None, *, dependencies: bool = True, on_line: Any = None) -> None:
        self.calls.append(f"up {services}")
        if services == ["migrate"]:
            self.migration_started = self.clock.now

    def services(self) -> list[str]:
        return ["app", "files", "migrate", "routes", "traefik"]

    def containers(self) -> list[ContainerInfo]:
        found = [container("files", "exited", exit_code=0)] if "up ['files']" in self.calls else []
        if self.migration_started is None:
            return found
        done = self.clock.now >= self.migration_started + self.migration_done_after
        found += [container("migrate", "exited" if done else "running", exit_code=0 if done else None)]
        if any(c.startswith("up ['routes'") for c in self.calls):
            found += [container("traefik", health="healthy"), container("routes")]
        if any(c.startswith("start_beside app") for c in self.calls):
            found += [container("app", health="healthy" if self.healthy else "starting")]
        return found

    def logs(self, services: list[str], tail: int | None = None) -> str:
        return f"{services[0]} log line"

    def down(self, delete_volumes: bool, on_line: Any = None) -> None:
        self.calls.append("down")

    def exec(self, name: str, argv: list[str]) -> str:
        if name == "shop-routes-1" and any("print(open(path).read()" in a for a in argv):
            return "[]"  # the release history: a first deploy
        if name == "shop-routes-1":
            self.calls.append("write routes")
            return ""
        if self.exec_error is not None:
            raise self.exec_error
        return "3\n"


def _unused_ports() -> tuple[int, int]:
    """Two ports nothing listens on right now: the fake deploy's port check and its probes really run on 127.0.0.1."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return int(a.getsockname()[1]), int(b.getsockname()[1])


HTTP_PORT, HTTPS_PORT = _unused_ports()


def project(tmp_path: Path, **app: Any) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {
        "name": "shop",
        "domain": "shop.example.com",
        "app": {"module": "app.main:app", **app},
        "migrate": {"command": "python3 -m app.migrate"},
        "ports": {"http": HTTP_PORT, "https": HTTPS_PORT},
    }
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


def run_up(tmp_path: Path, docker: FakeDocker, clock: Clock, timeout: float = 100, **app: Any) -> list[str]:
    said: list[str] = []
    up(
        project(tmp_path, **app),
        report=said.append,
        docker=docker,  # type: ignore[arg-type]
        deadline=Deadline(timeout, clock=clock, sleep=clock.sleep),
        smoke_wait=None,
    )
    return said


def test_the_health_wait_gets_only_what_is_left_of_one_deadline(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker(clock)  # build 30 s, migration 40 s, and the app never turns healthy
    with pytest.raises(HealthTimeoutError) as caught:
        run_up(tmp_path, docker, clock, timeout=100)
    # Before: the health wait had its own 100 s, so `up` gave up only at 170 s.
    assert clock.now - 1000 == pytest.approx(100, abs=0.01)
    first = re.sub(r"release \d{8}T\d{6}Z ", "release R ", str(caught.value).splitlines()[0])  # a UTC timestamp
    first = re.sub(r"generation g[0-9a-f]{11} ", "generation G ", first)
    assert first == (
        "the new release R (shop-app-1) was removed: `up` ran out of its --timeout of 100s while waiting for the new "
        "release to answer through Traefik (after 100s in total, 28s of them in this step): Traefik did not answer "
        "a probe of routes generation G with 200 (https://shop.example.com/health); last answer: GET "
        f"https://shop.example.com:{HTTPS_PORT}/health (at 127.0.0.1 port {HTTPS_PORT}) failed: [Errno 111] Connection "
        "refused. "
        "Nothing was serving before; volumes are kept."
    )


def test_the_migration_wait_says_which_step_ran_out(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker(clock, migration_done_after=500)
    with pytest.raises(HealthTimeoutError) as caught:
        run_up(tmp_path, docker, clock, timeout=100)
    assert clock.now - 1000 == pytest.approx(100, abs=0.01)
    assert str(caught.value).splitlines()[0] == (
        "`up` ran out of its --timeout of 100s while the migration ran (after 100s in total, 70s of them in this "
        "step); the migration was still running and the app was not touched."
    )
    assert not any(c.startswith("up ['app'") for c in docker.calls)


def test_the_routing_wait_shares_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()

    class NoRoute:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> NoRoute:
            return self

        def __exit__(self, *args: Any) -> None:
            pass

        def get(self, *args: Any, **kwargs: Any) -> Any:
            clock.now += 1
            raise HttpCheckError("connection refused")

    monkeypatch.setattr(probes, "HttpClient", NoRoute)
    docker = FakeDocker(clock, healthy=True)
    with pytest.raises(HealthTimeoutError) as caught:
        run_up(tmp_path, docker, clock, timeout=100)
    assert clock.now - 1000 <= 101  # one last request may start just before the deadline
    first = re.sub(r"release \d{8}T\d{6}Z ", "release R ", str(caught.value).splitlines()[0])
    first = re.sub(r"generation g[0-9a-f]{11} ", "generation G ", first)
    assert first == (
        "the new release R (shop-app-1) was removed: `up` ran out of its --timeout of 100s while waiting for the new "
        "release to answer through Traefik (after 100s in total, 28s of them in this step): Traefik did not answer "
        "a probe of routes generation G with 200 (https://shop.example.com/health); last answer: connection refused. "
        "Nothing was serving before; volumes are kept."
    )


def test_volume_owners_are_fixed_after_the_build_and_before_the_migration(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker(clock, healthy=True)
    with pytest.raises(HealthTimeoutError):  # no Traefik here: routing never answers; what ran before is the point
        run_up(tmp_path, docker, clock, timeout=100, volumes={"data": "/data", "cache": "/var/cache/app"})
    order = [c for c in docker.calls if c in ("build", "probe_image", "run_chown", "up ['migrate']")]
    assert order == ["build", "probe_image", "run_chown", "up ['migrate']"]
    image, argv, volumes = docker.chowns[0]
    assert image == "shop-app:latest"
    assert volumes == {"shop_cache": "/var/cache/app", "shop_data": "/data"}
    assert argv[0] == "-c" and argv[2:] == ["app", "/var/cache/app", "/data"]


@pytest.mark.parametrize("user", ["", "root", "0", "0:0", "root:app"])
def test_no_chown_container_for_an_image_running_as_root(tmp_path: Path, user: str) -> None:
    docker = FakeDocker(Clock(), user=user)
    assert fix_volume_owners(project(tmp_path, volumes={"data": "/data"}), docker) == []  # type: ignore[arg-type]
    assert "run_chown" not in docker.calls and not any(c.startswith("ensure_volume") for c in docker.calls)


def test_no_chown_container_without_volumes(tmp_path: Path) -> None:
    docker = FakeDocker(Clock())
    assert fix_volume_owners(project(tmp_path), docker) == []  # type: ignore[arg-type]
    assert docker.calls == []


def test_fix_volume_owners_reports_only_what_it_changed(tmp_path: Path) -> None:
    docker = FakeDocker(Clock())
    said: list[str] = []
    changed = fix_volume_owners(
        project(tmp_path, volumes={"data": "/data", "cache": "/var/cache/app"}),
        docker,  # type: ignore[arg-type]
        said.append,
    )
    assert changed == ["shop_data"]
    assert said == [
        "volume shop_data: gave its top directory /data to the app's user app (uid:gid 0:0 -> 999:999); "
        "nothing inside it was changed"
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_the_chown_script_changes_only_the_top_directory_and_only_when_needed(tmp_path: Path) -> None:
    """The script the container runs, run here on real directories (as root, like in the container)."""
    top = tmp_path / "data"
    (top / "inner").mkdir(parents=True)
    (top / "inner" / "file").write_text("x")
    os.chown(top, 0, 0)
    script = steps._CHOWN_TOPS
    first = subprocess.run(
        [sys.executable, "-c", script, "nobody", str(top)], capture_output=True, text=True, check=True
    ).stdout
    nobody = top.stat().st_uid
    assert nobody != 0 and first == f"chowned {top} 0:0 {nobody}:{top.stat().st_gid}\n"
    assert (top / "inner").stat().st_uid == 0 and (top / "inner" / "file").stat().st_uid == 0  # never recursive
    again = subprocess.run(
        [sys.executable, "-c", script, "nobody", str(top)], capture_output=True, text=True, check=True
    ).stdout
    assert again == f"kept {top}\n"
    gid = top.stat().st_gid
    numeric = subprocess.run(
        [sys.executable, "-c", script, "4242:4343", str(top)], capture_output=True, text=True, check=True
    ).stdout
    assert numeric == f"chowned {top} {nobody}:{gid} 4242:4343\n"
    assert (top.stat().st_uid, top.stat().st_gid) == (4242, 4343)


def test_status_keeps_the_row_when_counting_workers_fails(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker(clock)
    docker.migration_started = 0
    docker.calls += ["up ['routes', 'traefik']", "start_beside app 1"]
    docker.exec_error = DockerError(
        "`python3 -c ...` failed in shop-app-1",
        ["docker", "exec"],
        "Error response from daemon: container is restarting",
    )
    st = status(project(tmp_path), docker)  # type: ignore[arg-type]
    app = next(s for s in st.services if s.service == "app")
    assert (app.status, app.workers) == ("running", None)
    assert app.note == (
        "workers unknown: counting them in shop-app-1 failed (Error response from daemon: container is restarting)"
    )
    assert [s.service for s in st.services] == ["migrate", "traefik", "routes", "app"]
    docker.exec_error = None
    assert (
        next(
            s
            for s in status(project(tmp_path), docker).services  # type: ignore[arg-type]
            if s.service == "app"
        ).workers
        == 3
    )
