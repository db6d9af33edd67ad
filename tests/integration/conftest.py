"""Fixtures for the integration suite: the real engine, local images, real Traefik, real Pebble.

`scripts/setup-env.sh` prepares the machine and writes $COMPOSEKIT_TESTENV/env; this file reads it,
starts Pebble (scripts/pebble.sh, by PID file) and gives tests `Stack`s: copies of an app directory with
a `local.yaml` overlay that points composekit at the local images and at Pebble as ACME CA.
Outside CI a missing environment skips the suite with the command that prepares it; in CI it fails.

Lanes (tests/integration/lanes.py): the tier runs in parallel (`pytest -n 4 --dist loadfile`, as scripts/test.sh
does). A lane is a set of host ports with its own Pebble validating there and its own lock file; each module holds a
lane's lock from its first test to its last, so four modules deploy at once. Lane 0 is the classic one (ports 80/443,
Pebble on 14000, /tmp/composekit-integration.lock, which other runs on this machine take too). A module marked
`exclusive` (it restarts dockerd) holds every lane's lock, to the end of the session (they run last, with the engine
out of the test swarm); one marked `swarm` (it needs the two-node swarm) holds lane 0's, beside the other lanes; one
marked `edge` (the engine's one shared edge) holds the edge lock and whichever lane is free; any other takes whichever
lane is free.
In a parallel run the engine is in the test swarm from before the workers start to after they end (the controller's
pytest_sessionstart/pytest_sessionfinish below), so swarm modules run beside the others.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from python_on_whales import DockerClient
from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

from .lanes import ALONE, LANES, MODULE_SECONDS, Kind, Lane, hold, kind_of, module_marks, schedule, xdist_scope

REPO = Path(__file__).resolve().parents[2]
# Projects a developer may have running on this machine: tests never create (or delete) them.
RESERVED_PROJECTS = {"shop": "scripts/example.sh", "bench-a": "benchmarks/", "bench-b": "benchmarks/"}
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))


def worker_lane() -> Lane | None:
    """The lane this process's modules must use: COMPOSEKIT_TEST_LANE when set; lane 0 outside pytest-xdist (a plain
    `pytest` run); None for an xdist worker, whose modules take whichever lane is free (lanes.hold)."""
    chosen = os.environ.get("COMPOSEKIT_TEST_LANE")
    if chosen is None:
        return None if os.environ.get("PYTEST_XDIST_WORKER") else LANES[0]
    if not chosen.isdigit() or int(chosen) >= len(LANES):
        raise pytest.UsageError(f"COMPOSEKIT_TEST_LANE must be one of 0..{len(LANES) - 1}, got {chosen!r}")
    return LANES[int(chosen)]


def module_kind(module: Any) -> Kind:
    """`exclusive`, `swarm`, `edge` or `any` (lanes.py), from the module's pytestmark."""
    marks = getattr(module, "pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return kind_of({mark.name for mark in marks})


def _module_path(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order lanes take modules in (lanes.schedule; scripts/test.sh runs `--dist loadfile --no-loadscope-reorder`,
    with the scheduler below). A module's tests keep their order."""
    kinds: dict[str, Kind] = {}
    counts: dict[str, int] = {}
    for item in items:
        path = _module_path(item)
        counts[path] = counts.get(path, 0) + 1
        module = getattr(item, "module", None)
        kinds.setdefault(path, "any" if module is None else module_kind(module))
    seconds = {f"tests/integration/{name}": value for name, value in MODULE_SECONDS.items()}
    order = schedule([(path, kinds[path], counts[path]) for path in counts], seconds)
    rank = {path: i for i, (path, _) in enumerate(order)}
    items.sort(key=lambda item: rank[_module_path(item)])


class LaneFileScheduling(LoadFileScheduling):  # type: ignore[misc]
    """`--dist loadfile` (a module's tests on one worker, modules handed out in collection order), except that the
    swarm modules are one work unit, the edge modules another and the exclusive ones a third (lanes.xdist_scope): one
    worker runs each group's modules one after the other while the others work on the other lanes, instead of
    several workers waiting for the same lock. (pytest-xdist's own `loadgroup` cannot do it with pytest 9: the group it
    appends to a test's id is lost.) The controller collects nothing, so it reads the marks from the sources."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._root = config.rootpath
        self._scopes: dict[str, str] = {}

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path not in self._scopes:
            source = self._root / path
            kind = kind_of(module_marks(source)) if source.is_file() else "any"
            self._scopes[path] = xdist_scope(path, kind)
        return self._scopes[path]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """LaneFileScheduling for `--dist loadfile`; any other mode is pytest-xdist's own."""
    return LaneFileScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


@dataclass(frozen=True)
class TestEnv:
    __test__ = False  # not a test class, despite its name

    values: dict[str, str]
    roots: Path  # this lane's Pebble's current issuing root + intermediate
    lane: Lane = LANES[0]

    @property
    def python_image(self) -> str:
        return self.values["COMPOSEKIT_TEST_PYTHON_IMAGE"]

    @property
    def traefik_image(self) -> str:
        return self.values["COMPOSEKIT_TEST_TRAEFIK_IMAGE"]

    @property
    def postgres_image(self) -> str:
        return self.values["COMPOSEKIT_TEST_POSTGRES_IMAGE"]

    @property
    def redis_image(self) -> str:
        """scripts/setup-env.sh builds it; an env file written before it did names no Redis image."""
        return self.values.get("COMPOSEKIT_TEST_REDIS_IMAGE", "composekit-test/redis:7")

    @property
    def pebble_ca(self) -> str:
        return self.values["COMPOSEKIT_TEST_PEBBLE_CA"]

    @property
    def acme_dir(self) -> str:
        """This lane's ACME directory (lane 0: the env file's, on port 14000)."""
        return self.values["COMPOSEKIT_TEST_ACME_DIR"].replace(":14000/", f":{self.lane.acme_port}/")

    def overlay(self, **extra: Any) -> dict[str, Any]:
        """The local.yaml that points a stack at this machine's images and this lane's Pebble and ports."""
        doc: dict[str, Any] = {
            "acme": {"ca_server": self.acme_dir, "ca_certificates": [self.pebble_ca]},
            "images": {"python": self.python_image, "traefik": self.traefik_image},
            # Test domains resolve nowhere and Pebble's roots are trusted by nobody: smoke checks this machine.
            "smoke": {"resolve": "127.0.0.1", "ca_file": str(self.roots)},
        }
        if self.lane.index != 0:
            doc["ports"] = {"http": self.lane.http_port, "https": self.lane.https_port}
        return _merge(doc, extra)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"integration environment missing in CI: {reason}", pytrace=False)
    pytest.skip(f"{reason}; run `bash scripts/setup-env.sh` first (scripts/test.sh does it)")


def env_script(
    script: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`bash scripts/SCRIPT ARGS` (sshd.sh, registry.sh: the test environment's own servers), its output captured."""
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


def start_env_server(script: str, what: str, install: str) -> dict[str, str]:
    """`scripts/SCRIPT start` (a failure fails the test under CI and skips it otherwise, saying why and ``install``),
    then the KEY=VALUE lines of `scripts/SCRIPT env`."""
    started = env_script(script, "start")
    if started.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/{script} start failed: {started.stderr}", pytrace=False)
        pytest.skip(f"no test {what}: {started.stderr.strip()[-300:]} ({install})")
    return dict(line.split("=", 1) for line in env_script(script, "env").stdout.splitlines() if "=" in line)


def _load_testenv(lane: Lane) -> TestEnv:
    env_file = STATE / "env"
    if not env_file.is_file():
        _unavailable(f"{env_file} not found")
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    for key, value in values.items():
        if key.startswith("DOCKER_"):
            os.environ.setdefault(key, value)
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        _unavailable(f"the Docker engine does not answer: {probe.stderr.strip()[:200]}")
    pebble = {"PEBBLE_LANE": str(lane.index)}
    started = env_script("pebble.sh", "start", env=pebble)
    if started.returncode != 0:
        _unavailable(f"Pebble (lane {lane.index}) did not start: {started.stderr.strip()[-400:]}")
    roots = env_script("pebble.sh", "roots", env=pebble)
    if roots.returncode != 0:
        _unavailable(f"cannot read Pebble's roots (lane {lane.index}): {roots.stderr.strip()[-400:]}")
    return TestEnv(values=values, roots=Path(roots.stdout.strip().splitlines()[-1]), lane=lane)


@pytest.fixture(scope="session")
def lane_envs() -> dict[int, TestEnv]:
    """Each lane's TestEnv, made (Pebble started, roots read) the first time a module of this worker needs it."""
    return {}


class EveryLane:
    """Every lane's lock, taken by the first exclusive or swarm module of this process (lanes.hold) and kept to the
    end of the session: those modules run last, one after the other (one xdist work unit), and the engine stays in
    the test swarm from the first swarm module to the end (swarm_cluster.py), so no other module may start between
    two of them."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._held: tuple[Lane, tuple[Lane, ...]] | None = None

    def take(self, kind: Kind) -> tuple[Lane, tuple[Lane, ...], float]:
        """(lane 0, every lane, seconds waited: 0 when this process held them already)."""
        if self._held is not None:
            return (*self._held, 0.0)
        lane, lanes, waited = self._stack.enter_context(hold(kind, worker_lane()))
        self._held = (lane, lanes)
        return lane, lanes, waited


@pytest.fixture(scope="session")
def every_lane() -> Iterator[EveryLane]:
    """EveryLane, released at the end of the session: after the swarm is left (the swarm fixtures depend on this one,
    so they are torn down first)."""
    with ExitStack() as stack:
        yield EveryLane(stack)


@pytest.fixture(scope="session")
def swarm_session(every_lane: EveryLane) -> Iterator[list[bool]]:
    """Whether a module of this session used the test swarm (swarm_cluster.py). At the end of a plain (not xdist)
    session that did, the main engine leaves it, ALWAYS, also when a test failed, with every lane's lock held. An
    xdist worker leaves nothing: other workers' modules may still be running; the controller leaves it once every
    worker has ended (pytest_sessionfinish)."""
    started: list[bool] = []
    yield started
    if started and not os.environ.get("PYTEST_XDIST_WORKER"):
        from .swarm_cluster import leave_swarm  # it imports this module

        every_lane.take("exclusive")
        leave_swarm()


@pytest.fixture(scope="module")
def held_lane(request: pytest.FixtureRequest, every_lane: EveryLane) -> Iterator[Lane]:
    """The lane this module runs on, its lock held (lanes.hold) from the module's first test to its last, across
    concurrent pytest runs too; an exclusive module holds every lane's, to the end of the session (EveryLane), and
    runs with the engine out of the test swarm (test_engine turns on live-restore, which Swarm refuses: it is left
    here, with every lane held). Holding them, it frees the held lanes' ports of an interrupted run's leftovers. How
    long it waited is noted for the tier's summary of modules."""
    kind = module_kind(request.module)
    with ExitStack() as module_held:
        if kind in ALONE:
            lane, lanes, waited = every_lane.take(kind)
            from .swarm_cluster import leave_swarm, swarm_is_up  # it imports this module

            if swarm_is_up():
                leave_swarm()
        else:
            lane, lanes, waited = module_held.enter_context(hold(kind, worker_lane()))
        _LANE_NOTES[request.node.nodeid] = (lane.index, waited)
        for each in lanes:
            free_host_ports(DockerClient(), each)
        yield lane


@pytest.fixture(scope="module")
def testenv(held_lane: Lane, lane_envs: dict[int, TestEnv]) -> TestEnv:
    """The environment of this module's lane."""
    if held_lane.index not in lane_envs:
        lane_envs[held_lane.index] = _load_testenv(held_lane)
    return lane_envs[held_lane.index]


@dataclass
class Stack:
    dir: Path
    name: str
    domain: str
    env: TestEnv
    docker: DockerClient = field(default_factory=DockerClient)

    def ck(
        self, *args: str, check: bool = True, timeout: float = 900, extra_config: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `composekit` CLI against this stack (config + local overlay + extra_config files)."""
        configs = [arg for f in ("composekit.yaml", "local.yaml", *extra_config) for arg in ("-c", f)]
        cmd = [sys.executable, "-m", "composekit.cli", *configs, *args]
        result = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"composekit {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-6000:]}"
            )
        return result

    def https(self, path: str = "/", method: str = "GET", **kwargs: Any) -> httpx.Response:
        """An HTTPS request to 127.0.0.1 with SNI and Host = the domain, trusting only Pebble's roots."""
        verify = ssl.create_default_context(cafile=str(self.env.roots))
        with httpx.Client(verify=verify, timeout=10) as client:
            return client.request(
                method,
                f"{self.base_url}{path}",
                headers={"Host": self.domain},
                extensions={"sni_hostname": self.domain},
                **kwargs,
            )

    @property
    def base_url(self) -> str:
        """https://127.0.0.1 and this lane's HTTPS port (none for 443): where load and requests go."""
        port = self.env.lane.https_port
        return "https://127.0.0.1" if port == 443 else f"https://127.0.0.1:{port}"

    def http(self, path: str = "/") -> httpx.Response:
        port = self.env.lane.http_port
        with httpx.Client(timeout=10, follow_redirects=False) as client:
            return client.get(f"http://127.0.0.1:{port}{path}", headers={"Host": self.domain})

    def peer_certificate(self) -> dict[str, Any]:
        """The certificate Traefik serves for the domain, verified against Pebble's roots."""
        context = ssl.create_default_context(cafile=str(self.env.roots))
        with (
            socket.create_connection(("127.0.0.1", self.env.lane.https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=self.domain) as tls,
        ):
            return tls.getpeercert()  # type: ignore[return-value]

    def break_stale_lock(self) -> None:
        """A deploy lock left by an earlier, interrupted run of this test-owned stack (the lock is a container
        that outlives dockerd restarts) would refuse every deploy of this run."""
        lock = f"{self.name}-deploy-lock"
        if self.docker.container.exists(lock):
            self.docker.container.remove(lock, force=True)

    def leftovers(self, remote: bool = False) -> bool:
        """Whether this project may have anything on the engine: containers, volumes or networks labelled with it
        (by Compose, or by `docker stack deploy`). A stack on another engine (host:) or in swarm mode always may."""
        if remote:
            return True
        for kind in ("container", "volume", "network"):
            for label in ("com.docker.compose.project", "com.docker.stack.namespace"):
                every = ["--all"] if kind == "container" else []
                listed = subprocess.run(
                    ["docker", kind, "ls", "--quiet", *every, "--filter", f"label={label}={self.name}"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                if listed.returncode != 0 or listed.stdout.strip():
                    return True  # something there, or no answer: take it down to be sure
        return False

    def containers(self) -> dict[str, Any]:
        found = self.docker.container.list(all=True, filters=[("label", f"com.docker.compose.project={self.name}")])
        return {(c.config.labels or {})["com.docker.compose.service"]: c for c in found}

    def wait_https(self, path: str = "/", timeout: float = 60) -> httpx.Response:
        """Retry until the route answers with a Pebble-issued certificate (issuance takes a few seconds); polled every
        0.25 s, so the wait ends right after the certificate is served."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                return self.https(path)
            except (httpx.HTTPError, ssl.SSLError) as exc:
                last = exc
                time.sleep(0.25)
        raise AssertionError(f"https://{self.domain}{path} never answered with a trusted certificate: {last!r}")


def _holders(docker: DockerClient, ports: tuple[int, ...]) -> dict[str, tuple[str, str]]:
    """Containers publishing a host port the suite needs: name -> (compose project, its working dir)."""
    found = {}
    for port in ports:
        for c in docker.container.list(filters=[("publish", str(port))]):
            labels = c.config.labels or {}
            found[c.name] = (
                labels.get("com.docker.compose.project", ""),
                labels.get("com.docker.compose.project.working_dir", ""),
            )
    return found


def free_host_ports(docker: DockerClient, lane: Lane = LANES[0]) -> None:
    """Before a module takes its lane's ports (lane 0: 80/443): a stack left by an interrupted test run (its
    compose working dir is a pytest tmp dir, so it holds test data only) is taken down with its volumes and its
    deploy lock; anything else holding them stops the whole run with what holds them and how to free them,
    instead of failing every test that deploys."""
    tmp_root = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    ports = (lane.http_port, lane.https_port)
    for project, workdir in set(_holders(docker, ports).values()):
        if project and project not in RESERVED_PROJECTS and Path(workdir).is_relative_to(tmp_root):
            print(f"conftest: taking down {project!r}, left running by an interrupted test run ({workdir})")
            subprocess.run(
                ["docker", "compose", "-p", project, "down", "--volumes", "--remove-orphans", "--timeout", "5"],
                capture_output=True,
                timeout=120,
                check=False,
            )
            lock = f"{project}-deploy-lock"
            if docker.container.exists(lock):
                docker.container.remove(lock, force=True)
    left = _holders(docker, ports)
    if left:
        name, (project, workdir) = next(iter(left.items()))
        fix = RESERVED_PROJECTS.get(project)
        how = f"`composekit down` for it ({fix} started it)" if fix else "`docker stop " + name + "`"
        pytest.exit(
            f"container {name} (compose project {project or '-'}, {workdir or 'no compose working dir'}) publishes "
            f"port {ports[0]} or {ports[1]}, which the integration suite needs (Pebble validates there); "
            f"stop it: {how}",
            returncode=1,
        )
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
            except OSError as exc:
                pytest.exit(
                    f"port {port} is held by a process outside Docker ({exc.strerror}), and the integration suite "
                    f"needs it (Pebble validates there): `ss -ltnp 'sport = :{port}'` shows which; stop it",
                    returncode=1,
                )


@pytest.fixture(scope="module")
def host_ports(held_lane: Lane) -> None:
    """Stacks publish their lane's host ports (lane 0: 80/443; where that lane's Pebble validates): one test module
    of a lane holds them at a time (held_lane)."""


@pytest.fixture(scope="module", autouse=True)
def lane_lock(host_ports: None) -> None:
    """Every module holds its lane's lock (an exclusive one: every lane's) from its first test to its last, whether
    it deploys or not: a module that only runs commands against the engine must not overlap an exclusive one (a
    dockerd restart, a swarm), and doctor's checks of free ports must not see another module's stack."""


@pytest.fixture(scope="module")
def make_stack(testenv: TestEnv, tmp_path_factory: pytest.TempPathFactory, host_ports: None) -> Iterator[Any]:
    """make_stack(source_dir, name, domain=None, **config_overrides) -> Stack.

    Module-scoped, so a module can share one deployment across its tests. Only one stack can hold the
    host ports: making a new stack takes the module's earlier ones down (test data only). All are taken
    down at the end of the module.
    """
    made: list[Stack] = []

    def make(source: Path, name: str, domain: str | None = None, **overrides: Any) -> Stack:
        if name in RESERVED_PROJECTS:
            raise ValueError(
                f"{name!r} is the project of {RESERVED_PROJECTS[name]}: a test stack must not take it over"
            )
        for earlier in made:
            earlier.ck("down", "--delete-volumes", check=False, timeout=120)
        target = tmp_path_factory.mktemp(name) / name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
        domain = domain or f"{name}.composekit.test"
        overlay = testenv.overlay(name=name, domain=domain, **overrides)
        (target / "local.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
        stack = Stack(dir=target, name=name, domain=domain, env=testenv)
        stack.break_stale_lock()
        # Leftovers of an interrupted earlier run of this test-owned project (a database volume initialised with
        # another password, say) must not decide this run. Looking costs a few Docker API calls; `down` (2-3 s of
        # CLI and Compose) runs only when there is something to take down.
        if stack.leftovers(remote="host" in overrides or overrides.get("mode") == "swarm"):
            stack.ck("down", "--delete-volumes", check=False, timeout=120)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        # Test-owned stacks only: their volumes hold nothing but test data.
        stack.ck("down", "--delete-volumes", check=False, timeout=120)
        stack.break_stale_lock()


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """poetry (+ export plugin) and uv: from the test venv when installed there, else a throwaway venv (once per
    session: test_real_repos.py uses them too)."""
    here = Path(sys.executable).parent
    if (here / "poetry").is_file() and (here / "uv").is_file():
        return {"poetry": here / "poetry", "uv": here / "uv"}
    target = tmp_path_factory.mktemp("lock-tools") / "venv"
    venv.create(target, with_pip=True)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "poetry", "poetry-plugin-export", "uv"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {"poetry": target / "bin" / "poetry", "uv": target / "bin" / "uv"}


# The test swarm of a parallel run: up from before the workers start to after they end ------------------------------

_SWARM_NOTES: list[str] = []  # what the controller did with the test swarm, for the summary


def _xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def _runs_swarm_modules(config: pytest.Config) -> bool:
    """Whether the run's arguments name a swarm module (read from the sources: the controller collects nothing)."""
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else config.invocation_params.dir / path
        files = [path] if path.is_file() else sorted(path.rglob("test_*.py")) if path.is_dir() else []
        if any(kind_of(module_marks(f)) == "swarm" for f in files):
            return True
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """The xdist controller of a run with swarm modules puts the engine in the test swarm before any worker starts
    (pytest-xdist starts them in its own, later, pytest_sessionstart), holding every lane's lock: the init disturbs
    Docker's DNS for other stacks' containers, and none exists yet. A failed start is noted; the first swarm module
    tries again and fails (CI) or skips saying why."""
    if not (_xdist_controller(session.config) and _runs_swarm_modules(session.config)):
        return
    from .swarm_cluster import swarm_is_up, swarm_script

    begun = time.monotonic()
    with hold("exclusive", None):
        if swarm_is_up():
            _SWARM_NOTES.append("test swarm: up already when the run began")
            return
        started = swarm_script("start")
    took = time.monotonic() - begun
    if started.returncode == 0:
        _SWARM_NOTES.append(f"test swarm: started before the workers in {took:.0f} s")
    else:
        _SWARM_NOTES.append(f"test swarm: scripts/swarm.sh start failed: {started.stderr.strip()[-600:]}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The xdist controller leaves the test swarm once every worker has ended, holding every lane's lock, ALWAYS
    (also when a test failed); a failure to leave fails the run."""
    if not (_xdist_controller(session.config) and _runs_swarm_modules(session.config)):
        return
    from .swarm_cluster import leave_swarm, swarm_is_up

    begun = time.monotonic()
    with hold("exclusive", None):
        if not swarm_is_up() and not (STATE / "swarm" / "state").exists():
            return
        try:
            leave_swarm()
        except AssertionError as exc:
            _SWARM_NOTES.append(f"test swarm: leaving it FAILED: {exc}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
    _SWARM_NOTES.append(f"test swarm: left after the workers ended in {time.monotonic() - begun:.0f} s")


# The tier's summary of modules: which lane each ran on, how long it waited for it, how long it ran ---------------

_LANE_NOTES: dict[str, tuple[int, float]] = {}  # module path -> (its lane, seconds it waited): this process's


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """The first setup report of a module carries its lane and wait (xdist sends user_properties to the controller)."""
    report = yield
    note = _LANE_NOTES.pop(_module_path(item), None) if call.when == "setup" else None
    if note is not None:
        report.user_properties += [("lane", note[0]), ("lane_wait", note[1])]
    return report


@dataclass
class _ModuleRun:
    worker: str
    start: float
    stop: float
    lane: int | None = None
    waited: float = 0.0


_RUNS: dict[str, _ModuleRun] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if "integration/" not in path:
        return
    node = getattr(report, "node", None)
    worker = str(node.gateway.id) if node is not None else "main"
    run = _RUNS.setdefault(path, _ModuleRun(worker, report.start, report.stop))
    run.start, run.stop = min(run.start, report.start), max(run.stop, report.stop)
    properties: dict[str, Any] = dict(report.user_properties)
    if "lane" in properties:
        run.lane, run.waited = int(properties["lane"]), float(properties["lane_wait"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Each integration module in the order it started: its worker, lane, start, seconds waited for its lane and
    seconds it ran (what `--durations` cannot show: a module's time, and a lane's idle time)."""
    for note in _SWARM_NOTES:
        terminalreporter.write_line(note)
    if not _RUNS:
        return
    first = min(run.start for run in _RUNS.values())
    last = max(run.stop for run in _RUNS.values())
    terminalreporter.write_sep("=", "integration modules: worker, lane, start, waited for the lane, ran")
    busy: dict[str, float] = {}
    for path, run in sorted(_RUNS.items(), key=lambda item: item[1].start):
        ran = run.stop - run.start - run.waited
        busy[run.worker] = busy.get(run.worker, 0.0) + ran
        lane = "-" if run.lane is None else str(run.lane)
        terminalreporter.write_line(
            f"{run.worker:>4} lane {lane} +{run.start - first:6.0f}s waited {run.waited:5.0f}s ran {ran:5.0f}s  {path}"
        )
    for worker, seconds in sorted(busy.items()):
        terminalreporter.write_line(f"{worker}: ran modules {seconds:.0f} s of the tier's {last - first:.0f} s")
