"""Fixtures for the integration suite: the real engine, local images, real Traefik, real Pebble.

`scripts/setup-env.sh` prepares the machine and writes $COMPOSEKIT_TESTENV/env; this file reads it,
starts Pebble (scripts/pebble.sh, by PID file) and gives tests `Stack`s: copies of an app directory with
a `local.yaml` overlay that points composekit at the local images and at Pebble as ACME CA.
Outside CI a missing environment skips the suite with the command that prepares it; in CI it fails.
"""

from __future__ import annotations

import fcntl
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from python_on_whales import DockerClient

REPO = Path(__file__).resolve().parents[2]
# Projects a developer may have running on this machine: tests never create (or delete) them.
RESERVED_PROJECTS = {"shop": "scripts/example.sh", "bench-a": "benchmarks/", "bench-b": "benchmarks/"}
STATE = Path(os.environ.get("COMPOSEKIT_TESTENV", "/var/lib/composekit-testenv"))


@dataclass(frozen=True)
class TestEnv:
    __test__ = False  # not a test class, despite its name

    values: dict[str, str]
    roots: Path  # Pebble's current issuing root + intermediate

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
        return self.values["COMPOSEKIT_TEST_ACME_DIR"]

    def overlay(self, **extra: Any) -> dict[str, Any]:
        """The local.yaml that points a stack at this machine's images and Pebble."""
        doc: dict[str, Any] = {
            "acme": {"ca_server": self.acme_dir, "ca_certificates": [self.pebble_ca]},
            "images": {"python": self.python_image, "traefik": self.traefik_image},
            # Test domains resolve nowhere and Pebble's roots are trusted by nobody: smoke checks this machine.
            "smoke": {"resolve": "127.0.0.1", "ca_file": str(self.roots)},
        }
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


def env_script(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`bash scripts/SCRIPT ARGS` (sshd.sh, registry.sh: the test environment's own servers), its output captured."""
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args], capture_output=True, text=True, timeout=timeout
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


@pytest.fixture(scope="session")
def testenv() -> TestEnv:
    env_file = STATE / "env"
    if not env_file.is_file():
        _unavailable(f"{env_file} not found")
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    for key, value in values.items():
        if key.startswith("DOCKER_"):
            os.environ.setdefault(key, value)
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable(f"the Docker engine does not answer: {probe.stderr.strip()[:200]}")
    started = subprocess.run(["bash", str(REPO / "scripts" / "pebble.sh"), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        _unavailable(f"Pebble did not start: {started.stderr.strip()[-400:]}")
    roots = subprocess.run(["bash", str(REPO / "scripts" / "pebble.sh"), "roots"], capture_output=True, text=True)
    if roots.returncode != 0:
        _unavailable(f"cannot read Pebble's roots: {roots.stderr.strip()[-400:]}")
    return TestEnv(values=values, roots=Path(roots.stdout.strip().splitlines()[-1]))


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
                f"https://127.0.0.1{path}",
                headers={"Host": self.domain},
                extensions={"sni_hostname": self.domain},
                **kwargs,
            )

    def http(self, path: str = "/") -> httpx.Response:
        with httpx.Client(timeout=10, follow_redirects=False) as client:
            return client.get(f"http://127.0.0.1{path}", headers={"Host": self.domain})

    def peer_certificate(self) -> dict[str, Any]:
        """The certificate Traefik serves for the domain, verified against Pebble's roots."""
        context = ssl.create_default_context(cafile=str(self.env.roots))
        with (
            socket.create_connection(("127.0.0.1", 443), timeout=10) as raw,
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


HOST_PORTS = (80, 443)


def _holders(docker: DockerClient) -> dict[str, tuple[str, str]]:
    """Containers publishing a host port the suite needs: name -> (compose project, its working dir)."""
    found = {}
    for port in HOST_PORTS:
        for c in docker.container.list(filters=[("publish", str(port))]):
            labels = c.config.labels or {}
            found[c.name] = (
                labels.get("com.docker.compose.project", ""),
                labels.get("com.docker.compose.project.working_dir", ""),
            )
    return found


def free_host_ports(docker: DockerClient) -> None:
    """Before a module takes ports 80/443: a stack left by an interrupted test run (its compose working dir is a
    pytest tmp dir, so it holds test data only) is taken down with its volumes and its deploy lock; anything
    else holding them stops the whole run with what holds them and how to free them, instead of failing every
    test that deploys."""
    tmp_root = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    for project, workdir in set(_holders(docker).values()):
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
    left = _holders(docker)
    if left:
        name, (project, workdir) = next(iter(left.items()))
        fix = RESERVED_PROJECTS.get(project)
        how = f"`composekit down` for it ({fix} started it)" if fix else "`docker stop " + name + "`"
        pytest.exit(
            f"container {name} (compose project {project or '-'}, {workdir or 'no compose working dir'}) publishes "
            f"port 80 or 443, which the integration suite needs (Pebble validates there); stop it: {how}",
            returncode=1,
        )
    for port in HOST_PORTS:
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
def host_ports(testenv: TestEnv) -> Iterator[None]:
    """Stacks publish the host's ports 80/443 (where Pebble validates): one test module holds them at a
    time, across concurrent pytest runs too. Holding the lock, it frees them of an interrupted run's leftovers."""
    with open("/tmp/composekit-integration.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            free_host_ports(DockerClient())
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
