"""Several apps on one engine behind the shared edge (edge: shared): the real engine, Traefik and Pebble.

Two small FastAPI apps, `notes` (two domains and a www redirect) and `blog`, each its own composekit.yaml. The first
`up` creates the edge; `blog` is deployed, redeployed, rolled back and taken down while `notes` is under constant
HTTPS load, which loses no request, and the edge's Traefik is never restarted. From a container on blog's network
nothing of notes answers. A third app claiming a domain of notes, or with other ACME settings, is refused before
anything changes. One edge and the apps are shared by the module's tests, in order.
"""

from __future__ import annotations

import fcntl
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from python_on_whales import DockerClient

from composekit.config.project import load_project
from composekit.render.edge import EDGE_PROJECT, REVISION_LABEL, SLOT_LABEL, render_edge

from .conftest import Stack, TestEnv
from .restart_load import HttpsLoad

# edge: the engine has one shared edge (Compose project composekit-edge) whatever the lane, so the edge modules
# take turns (the edge lock, lanes.py) rather than run beside each other (and test_doctor.py's port checks never
# see it).
pytestmark = [pytest.mark.integration, pytest.mark.edge]

NOTES = "edge-notes"
BLOG = "edge-blog"
NOTES_DOMAINS = [f"{NOTES}.composekit.test", f"{NOTES}-2.composekit.test"]
BLOG_DOMAIN = f"{BLOG}.composekit.test"

MAIN = """\
from fastapi import FastAPI

VERSION = "v1"
app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    return {{"status": "ok"}}


@app.get("/")
def root() -> dict[str, str]:
    return {{"app": "{name}", "version": VERSION}}
"""


def _app_dir(root: Path, name: str) -> Path:
    target = root / name
    (target / "app").mkdir(parents=True)
    (target / "app" / "__init__.py").write_text("")
    (target / "app" / "main.py").write_text(MAIN.format(name=name))
    (target / "requirements.txt").write_text("fastapi>=0.115\n")
    return target


def make_app(env: TestEnv, root: Path, name: str, domain: Any, **top: Any) -> Stack:
    target = _app_dir(root, name)
    config = {"name": name, "domain": domain, "edge": "shared", "app": {"module": "app.main:app", "workers": 1}}
    (target / "composekit.yaml").write_text(yaml.safe_dump({**config, **top}, sort_keys=False))
    overlay = env.overlay(acme={"email": "ops@example.com"})
    (target / "local.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    first = domain if isinstance(domain, str) else domain[0]
    return Stack(dir=target, name=name, domain=first, env=env)


def edge_traefik(docker: DockerClient) -> Any:
    found = docker.container.list(
        filters=[
            ("label", f"com.docker.compose.project={EDGE_PROJECT}"),
            ("label", "com.docker.compose.service=traefik"),
        ]
    )
    assert len(found) == 1, found
    return found[0]


def _remove_edge() -> None:
    """The edge of an earlier, interrupted run of this module (only these tests create one on the test engine)."""
    docker = DockerClient()
    for c in docker.container.list(all=True, filters=[("label", f"com.docker.compose.project={EDGE_PROJECT}")]):
        docker.container.remove(c.id, force=True)
    for net in docker.network.list(filters=[("label", f"com.docker.compose.project={EDGE_PROJECT}")]):
        docker.network.remove(net.id)


# The edge's Compose project name is one per engine, whatever the lane: modules of two lanes that deploy it must not
# overlap (each removes the edge of an interrupted run first). Every module creating an edge takes this lock.
EDGE_LOCK = Path("/tmp/composekit-edge-project.lock")


@pytest.fixture(scope="module")
def clean_edge(testenv: TestEnv) -> Iterator[None]:
    with EDGE_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _remove_edge()
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def apps(
    clean_edge: None, host_ports: None, testenv: TestEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Stack]]:
    root = tmp_path_factory.mktemp("edge")
    notes = make_app(testenv, root, NOTES, NOTES_DOMAINS, www="redirect_to_apex")
    blog = make_app(testenv, root, BLOG, BLOG_DOMAIN)
    made = {"notes": notes, "blog": blog}
    try:
        for s in made.values():
            s.break_stale_lock()
            if s.leftovers():
                subprocess.run(
                    ["docker", "compose", "-p", s.name, "down", "--volumes", "--remove-orphans", "--timeout", "5"],
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
        notes.ck("up", "--no-smoke", timeout=600)
        yield made
    finally:
        for s in made.values():
            s.ck("down", "--delete-volumes", check=False, timeout=120)
            s.break_stale_lock()
        notes.ck("edge", "down", "--force", "--delete-acme", check=False, timeout=120)
        _remove_edge()
        if DockerClient().volume.exists(f"{EDGE_PROJECT}_routes"):  # test-owned: only these tests create an edge
            DockerClient().volume.remove([f"{EDGE_PROJECT}_routes"])


def https_as(stack: Stack, domain: str, path: str = "/") -> httpx.Response:
    verify = ssl.create_default_context(cafile=str(stack.env.roots))
    with httpx.Client(verify=verify, timeout=10) as client:
        # The lane's HTTPS port (tests/integration/conftest.py: lane 0 publishes 443, lane 1 1443).
        url = f"https://127.0.0.1:{stack.env.lane.https_port}{path}"
        return client.get(url, headers={"Host": domain}, extensions={"sni_hostname": domain})


def wait_certificate(stack: Stack, domain: str, timeout: float = 60) -> None:
    """Until Traefik serves a Pebble-issued certificate for ``domain`` (each domain's is ordered in turn)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            https_as(stack, domain)
            return
        except (httpx.HTTPError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def certificate_names(stack: Stack, domain: str) -> set[str]:
    context = ssl.create_default_context(cafile=str(stack.env.roots))
    with (
        socket.create_connection(("127.0.0.1", stack.env.lane.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=domain) as tls,
    ):
        cert: Any = tls.getpeercert()
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


def test_the_first_app_creates_the_edge_and_owns_no_traefik(apps: dict[str, Stack]) -> None:
    notes = apps["notes"]
    assert "traefik" not in notes.containers()
    notes.wait_https("/")
    # each listed domain with its own certificate, its www name on it; the www name redirects permanently
    for domain in NOTES_DOMAINS:
        wait_certificate(notes, domain)
        assert https_as(notes, domain).json() == {"app": NOTES, "version": "v1"}
        assert certificate_names(notes, domain) == {domain, f"www.{domain}"}
    moved = https_as(notes, f"www.{NOTES_DOMAINS[1]}", "/some/path?q=1")
    assert moved.status_code in (301, 308), moved
    assert moved.headers["location"] == f"https://{NOTES_DOMAINS[1]}/some/path?q=1"
    status = json.loads(notes.ck("edge", "status", "--json").stdout)
    assert sorted(status["apps"]) == [NOTES]
    assert f"{NOTES}_web" in status["networks"]


def test_smoke_checks_every_domain(apps: dict[str, Stack]) -> None:
    done = apps["notes"].ck("smoke", timeout=300)
    for domain in NOTES_DOMAINS:
        assert domain in done.stdout + done.stderr


def test_another_apps_deploys_rollback_and_down_cost_the_first_no_request(apps: dict[str, Stack]) -> None:
    notes, blog = apps["notes"], apps["blog"]
    docker = DockerClient()
    before = edge_traefik(docker)
    with HttpsLoad(notes.domain, notes.env.roots, threads=2, max_seconds=500, port=notes.env.lane.https_port) as load:
        blog.ck("up", "--no-smoke", timeout=400)
        blog.wait_https("/")
        assert blog.https("/").json() == {"app": BLOG, "version": "v1"}
        main = blog.dir / "app" / "main.py"
        main.write_text(main.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
        blog.ck("up", "--no-smoke", timeout=400)
        assert blog.https("/").json() == {"app": BLOG, "version": "v2"}
        blog.ck("rollback", timeout=300)
        assert blog.https("/").json() == {"app": BLOG, "version": "v1"}
        isolation(notes, blog)
        blog.ck("down", timeout=120)
        result = load.stop()
    assert result.sent > 100, result
    assert result.failed == 0, result
    after = edge_traefik(docker)
    assert (after.id, after.state.started_at) == (before.id, before.state.started_at)
    assert after.restart_count == before.restart_count
    status = json.loads(notes.ck("edge", "status", "--json").stdout)
    assert sorted(status["apps"]) == [NOTES]
    assert f"{BLOG}_web" not in status["networks"]
    assert notes.https("/").json() == {"app": NOTES, "version": "v1"}


def isolation(notes: Stack, blog: Stack) -> None:
    """From a container on blog's network, notes' app container neither resolves by name nor answers at its
    address; blog's own app does (the probe itself works)."""
    docker = DockerClient()
    app = notes.containers()["app"]
    address = next(iter(docker.container.inspect(app.id).network_settings.networks.values())).ip_address
    probe = (
        "import socket, sys\n"
        "def reach(host):\n"
        "    try:\n"
        "        socket.create_connection((host, 8000), timeout=2).close()\n"
        "        return 'open'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        "print(reach(sys.argv[1]), reach(sys.argv[2]), reach(sys.argv[3]))\n"
    )
    own = blog.containers()["app"].name
    said = docker.container.run(
        notes.env.python_image,
        ["python3", "-c", probe, app.name, address, own],
        remove=True,
        networks=[f"{BLOG}_web"],
    )
    by_name, by_address, control = str(said).split()
    assert by_name != "open" and by_address != "open", said
    assert control == "open", said


def test_a_domain_another_app_routes_is_refused_before_anything_changes(apps: dict[str, Stack], tmp_path: Path) -> None:
    thief = make_app(apps["notes"].env, tmp_path, "edge-thief", ["edge-thief.composekit.test", NOTES_DOMAINS[1]])
    done = thief.ck("up", "--no-smoke", check=False, timeout=300)
    assert done.returncode == 1, done.stderr
    assert (
        f"domain: {NOTES_DOMAINS[1]} is routed by app {NOTES} on the shared edge, so app edge-thief cannot claim it"
    ) in done.stderr
    assert not thief.leftovers()


def test_a_first_up_failing_after_its_claim_gives_its_domains_back(apps: dict[str, Stack], tmp_path: Path) -> None:
    """The claim is made before the migration; a first `up` whose migration then fails routes nothing and holds no
    name: no router answers for it, `edge status` lists no such app, and another app may claim the name."""
    failing = make_app(
        apps["notes"].env,
        tmp_path,
        "edge-failing",
        "edge-failing.composekit.test",
        migrate={"command": "python3 -c 'raise SystemExit(\"no database\")'"},
    )
    try:
        done = failing.ck("up", "--no-smoke", check=False, timeout=300)
        assert done.returncode == 1, done.stderr
        assert "claimed edge-failing.composekit.test on the shared edge for app edge-failing" in done.stderr
        assert "no database" in done.stderr
        gave = "gave back edge-failing.composekit.test on the shared edge: the failed `up` routes none of them"
        assert gave in done.stderr, done.stderr
        status = json.loads(apps["notes"].ck("edge", "status", "--json").stdout)
        assert "edge-failing" not in status["apps"], status
        # No router for it (a name still claimed would answer 503); no certificate for it either: not verified here.
        url = f"https://127.0.0.1:{failing.env.lane.https_port}/"
        with httpx.Client(verify=False, timeout=10) as client:
            answer = client.get(url, headers={"Host": failing.domain}, extensions={"sni_hostname": failing.domain})
        assert answer.status_code == 404, answer.text
        assert https_as(apps["notes"], NOTES_DOMAINS[0]).json() == {"app": NOTES, "version": "v1"}
    finally:
        failing.ck("down", "--delete-volumes", check=False, timeout=120)
        failing.break_stale_lock()


EDGE_LOCK_CONTAINER = f"{EDGE_PROJECT}-lock"  # engine/edge_lock.py EDGE_LOCK
WAITING = "waiting up to 180 s: another composekit command is changing the shared edge"


def hold_edge_lock(env: TestEnv) -> None:
    """Take the edge lock as composekit does (a never-started container of that name), so that `up`s arriving at their
    claim wait for it (and say so) until release_edge_lock."""
    subprocess.run(
        [
            *("docker", "create", "--name", EDGE_LOCK_CONTAINER, "--network", "none"),
            *("--label", "composekit.lock=composekit-edge", "--label", "composekit.lock.holder=test_edge.py"),
            *(env.python_image, "true"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def release_edge_lock() -> None:
    subprocess.run(["docker", "rm", "-f", EDGE_LOCK_CONTAINER], check=False, capture_output=True, timeout=60)


def start(stack: Stack, log: Path, *args: str) -> subprocess.Popen[str]:
    """`composekit up --no-smoke` of ``stack`` in the background, its stderr into ``log``."""
    configs = [arg for f in ("composekit.yaml", "local.yaml") for arg in ("-c", f)]
    cmd = [sys.executable, "-m", "composekit.cli", *configs, "up", "--no-smoke", *args]
    with log.open("w") as err:
        return subprocess.Popen(cmd, cwd=stack.dir, stdout=subprocess.DEVNULL, stderr=err, text=True)


def race(env: TestEnv, runs: dict[str, tuple[Stack, Path]]) -> dict[str, tuple[int, str]]:
    """Start an `up` of each stack at once while this test holds the edge lock; once every one of them waits for the
    lock at its claim (each has passed the check before its build: no other had claimed yet), release it; every
    exit code and stderr, by name. An `up` that never waits for the lock (the code before the claim took it) runs
    to its end: the lock is released once every `up` waits or has ended."""
    hold_edge_lock(env)
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        procs.update({name: start(stack, log) for name, (stack, log) in runs.items()})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            waiting = [WAITING in log.read_text() for _, log in runs.values()]
            ended = [p.poll() is not None for p in procs.values()]
            if all(w or e for w, e in zip(waiting, ended, strict=True)):
                break
            time.sleep(0.5)
    finally:
        release_edge_lock()
    for p in procs.values():
        p.wait(timeout=600)
    return {name: (procs[name].returncode, log.read_text()) for name, (_, log) in runs.items()}


def one_winner(done: dict[str, tuple[int, str]], domain: str) -> tuple[str, str]:
    """(winner, loser) of two `up`s claiming ``domain``: exactly one exited 0, the other 1 with the claim refused
    naming both apps; both had waited for the edge lock at their claim."""
    codes = {name: code for name, (code, _) in done.items()}
    said = "\n\n".join(f"{name} exited {code}:\n{err[-4000:]}" for name, (code, err) in done.items())
    assert sorted(codes.values()) == [0, 1], said
    winner = next(name for name, code in codes.items() if code == 0)
    loser = next(name for name in codes if name != winner)
    refused = f"domain: {domain} is routed by app {winner} on the shared edge, so app {loser} cannot claim it"
    assert refused in done[loser][1], said
    assert all(WAITING in err for _, err in done.values()), said  # the race was run: both waited at the claim
    held = [line for _, err in done.values() for line in err.splitlines() if "releasing the edge lock" in line]
    print(f"{winner} won, {loser} refused; {'; '.join(held)}")
    return winner, loser


def test_two_first_ups_claiming_one_domain_at_once_exactly_one_gets_it(apps: dict[str, Stack], tmp_path: Path) -> None:
    """Two apps' first `up`s at the same moment, both claiming one domain: each passes the check before its build (no
    file claims it yet), then the claim (check and write under the edge lock) lets exactly one have it."""
    env = apps["notes"].env
    shared = "edge-race.composekit.test"
    stacks = {
        name: make_app(env, tmp_path, name, [f"{name}.composekit.test", shared])
        for name in ("edge-race-a", "edge-race-b")
    }
    try:
        done = race(env, {name: (s, tmp_path / f"{name}.log") for name, s in stacks.items()})
        winner, loser = one_winner(done, shared)
        status = json.loads(apps["notes"].ck("edge", "status", "--json").stdout)
        assert winner in status["apps"] and loser not in status["apps"], status
        assert not stacks[loser].leftovers()  # refused before anything of it started
        wait_certificate(stacks[winner], shared)
        assert https_as(stacks[winner], shared).json() == {"app": winner, "version": "v1"}
    finally:
        for s in stacks.values():
            s.ck("down", "--delete-volumes", check=False, timeout=120)
            s.break_stale_lock()
        release_edge_lock()


def test_a_domain_added_by_a_redeploy_and_a_first_up_claiming_it_at_once(
    apps: dict[str, Stack], tmp_path: Path
) -> None:
    """A running app's `up` adding a domain and another app's first `up` claiming it, at the same moment: exactly one
    gets it; a refused redeploy leaves its release serving its domains, unchanged."""
    env = apps["notes"].env
    added = "edge-race-added.composekit.test"
    running = make_app(env, tmp_path, "edge-race-c", "edge-race-c.composekit.test")
    first = make_app(env, tmp_path, "edge-race-d", ["edge-race-d.composekit.test", added])
    stacks = {running.name: running, first.name: first}
    try:
        running.ck("up", "--no-smoke", timeout=400)
        config = yaml.safe_load((running.dir / "composekit.yaml").read_text())
        (running.dir / "composekit.yaml").write_text(yaml.safe_dump({**config, "domain": [running.domain, added]}))
        done = race(env, {name: (s, tmp_path / f"{name}.log") for name, s in stacks.items()})
        winner, loser = one_winner(done, added)
        status = json.loads(apps["notes"].ck("edge", "status", "--json").stdout)
        assert added in status["apps"][winner], status
        assert added not in status["apps"].get(loser, []), status
        wait_certificate(stacks[winner], added)
        assert https_as(stacks[winner], added).json() == {"app": winner, "version": "v1"}
        if loser == running.name:
            assert status["apps"][loser] == [running.domain], status
            assert running.https("/").json() == {"app": running.name, "version": "v1"}
        else:
            assert not first.leftovers()
    finally:
        for s in stacks.values():
            s.ck("down", "--delete-volumes", check=False, timeout=120)
            s.break_stale_lock()
        release_edge_lock()


def test_other_acme_settings_are_refused_naming_both_values(apps: dict[str, Stack], tmp_path: Path) -> None:
    other = make_app(apps["notes"].env, tmp_path, "edge-other", "edge-other.composekit.test")
    (other.dir / "extra.yaml").write_text(yaml.safe_dump({"acme": {"email": "someone@example.org"}}))
    done = other.ck("up", "--no-smoke", check=False, timeout=300, extra_config=("extra.yaml",))
    assert done.returncode == 1, done.stderr
    assert "acme/email is 'someone@example.org' here but 'ops@example.com' on the edge" in done.stderr
    assert not other.leftovers()


def test_adding_and_removing_a_domain_never_restarts_the_edge(apps: dict[str, Stack]) -> None:
    notes = apps["notes"]
    before = edge_traefik(DockerClient())
    added = f"{NOTES}-3.composekit.test"
    config = yaml.safe_load((notes.dir / "composekit.yaml").read_text())
    (notes.dir / "composekit.yaml").write_text(yaml.safe_dump({**config, "domain": [*NOTES_DOMAINS, added]}))
    notes.ck("up", "--no-smoke", "--timeout", "150", timeout=300)
    wait_certificate(notes, added)
    assert certificate_names(notes, added) == {added, f"www.{added}"}
    assert https_as(notes, added).json() == {"app": NOTES, "version": "v1"}
    (notes.dir / "composekit.yaml").write_text(yaml.safe_dump(config))
    notes.ck("up", "--no-smoke", "--timeout", "150", timeout=300)
    assert https_as(notes, added).status_code == 404  # no router for it any more
    after = edge_traefik(DockerClient())
    assert (after.id, after.state.started_at) == (before.id, before.state.started_at)


def test_edge_down_is_refused_while_an_app_uses_it(apps: dict[str, Stack]) -> None:
    done = apps["notes"].ck("edge", "down", check=False, timeout=120)
    assert done.returncode == 1
    assert f"the shared edge routes 1 app(s): {NOTES}" in done.stderr
    edge_traefik(DockerClient())  # still there


class FreshConnectionLoad(HttpsLoad):
    """Like HttpsLoad, but every request on a new connection: each one is handed to whichever Traefik listens."""

    def _run(self) -> None:
        verify = ssl.create_default_context(cafile=str(self.roots))
        deadline = self._started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            error = None
            began = time.monotonic()
            try:
                with httpx.Client(verify=verify, timeout=5) as client:
                    response = client.get(
                        self.url, headers={"Host": self.domain}, extensions={"sni_hostname": self.domain}
                    )
                error = self._judge(response)
            except (httpx.HTTPError, ssl.SSLError, OSError, ValueError) as exc:
                error = type(exc).__name__
            with self._lock:
                self.result.sent += 1
                if error:
                    self.result.failed += 1
                    self.result.errors[error] += 1
            self._wait_turn(began, error)


def certificate_serial(stack: Stack, domain: str) -> str:
    context = ssl.create_default_context(cafile=str(stack.env.roots))
    with (
        socket.create_connection(("127.0.0.1", stack.env.lane.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=domain) as tls,
    ):
        cert: Any = tls.getpeercert()
    return str(cert["serialNumber"])


def edge_service(docker: DockerClient, service: str) -> list[Any]:
    return list(
        docker.container.list(
            all=True,
            filters=[
                ("label", f"com.docker.compose.project={EDGE_PROJECT}"),
                ("label", f"com.docker.compose.service={service}"),
            ],
        )
    )


def old_layout(stack: Stack, path: Path) -> None:
    """Write the edge as composekit rendered it before the holder: Traefik publishing the ports and on the edge's
    network itself, its entrypoints neither shared nor draining."""
    project = load_project((stack.dir / "composekit.yaml", stack.dir / "local.yaml"), stack.dir / "out")
    doc = yaml.safe_load(render_edge(project))
    holder = doc["services"].pop("holder")
    traefik = doc["services"]["traefik"]
    for key in ("network_mode", "stop_grace_period"):
        del traefik[key]
    traefik.update({k: holder[k] for k in ("ports", "networks", "extra_hosts") if k in holder})
    for label in (SLOT_LABEL, REVISION_LABEL):
        del traefik["labels"][label]
    static = yaml.safe_load(doc["configs"]["traefik.yml"]["content"])
    for name in ("web", "websecure"):
        entry = static["entryPoints"][name]
        del entry["reusePort"], entry["transport"], entry["http"]["middlewares"]
    static["entryPoints"]["ping"]["address"] = "127.0.0.1:8082"
    doc["configs"]["traefik.yml"]["content"] = yaml.safe_dump(static)
    path.write_text(yaml.safe_dump(doc))


def test_an_edge_of_the_old_layout_moves_to_the_holder_once(apps: dict[str, Stack], tmp_path: Path) -> None:
    """An edge whose Traefik publishes the ports itself (before the holder) moves to the holder layout on the next
    `edge up`: a short gap, measured; then the app is served as before, with the same certificates."""
    notes = apps["notes"]
    docker = DockerClient()
    for domain in NOTES_DOMAINS:
        wait_certificate(notes, domain)
    serials = {d: certificate_serial(notes, d) for d in NOTES_DOMAINS}
    (holder,) = edge_service(docker, "holder")
    addresses = {n: net.ip_address for n, net in holder.network_settings.networks.items()}
    for c in [*edge_service(docker, "traefik"), holder]:
        docker.container.remove(c.id, force=True)
    old_file = tmp_path / "old-edge.yaml"
    old_layout(notes, old_file)
    subprocess.run(
        ["docker", "compose", "-p", EDGE_PROJECT, "-f", str(old_file), "up", "-d", "--no-deps", "traefik"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    old = edge_traefik(docker)
    assert old.host_config.port_bindings  # it publishes the ports itself
    web = f"{NOTES}_web"
    docker.network.connect(web, old.id, ip=addresses[web])
    notes.wait_https("/")
    port = notes.env.lane.https_port
    with HttpsLoad(notes.domain, notes.env.roots, threads=2, max_seconds=300, port=port) as load:
        time.sleep(1)
        began = time.monotonic()
        done = notes.ck("edge", "up", "--timeout", "120", timeout=300)
        notes.wait_https("/")
        result = load.stop()
    gap = (result.last_failure or began) - began  # the last failed request, from the start of `edge up`
    print(f"moving an edge of the old layout: {result}; failing until {gap:.1f} s after `edge up` began")
    print(done.stderr)
    assert "it predates the holder layout" in done.stderr, done.stderr
    assert result.sent > 50, result
    assert result.failed < result.sent, result  # a gap, not an outage
    assert gap < 60, result
    (moved,) = edge_service(docker, "holder")
    assert web in moved.network_settings.networks
    assert moved.network_settings.networks[web].ip_address == addresses[web]
    new = edge_traefik(docker)
    assert new.host_config.network_mode == f"container:{moved.id}"
    assert {d: certificate_serial(notes, d) for d in NOTES_DOMAINS} == serials
    assert https_as(notes, NOTES_DOMAINS[1]).json() == {"app": NOTES, "version": "v1"}


def test_upgrading_the_edge_loses_no_request_of_either_app(apps: dict[str, Stack]) -> None:
    """Another Traefik image for the edge (a second tag of the local one) and `edge up`: the new Traefik starts
    beside the old one in the holder's namespace, the old one is drained and stopped; two apps under constant HTTPS
    load lose no request, the holder is untouched, the certificates are the same."""
    notes, blog = apps["notes"], apps["blog"]
    docker = DockerClient()
    blog.ck("up", "--no-smoke", timeout=400)
    blog.wait_https("/")
    for domain in [*NOTES_DOMAINS, BLOG_DOMAIN]:
        wait_certificate(notes, domain)
    serials = {d: certificate_serial(notes, d) for d in [*NOTES_DOMAINS, BLOG_DOMAIN]}
    (holder,) = edge_service(docker, "holder")
    before = edge_traefik(docker)
    upgraded = f"{notes.env.traefik_image}-edge-upgrade"
    docker.image.tag(notes.env.traefik_image, upgraded)
    try:
        local = yaml.safe_load((notes.dir / "local.yaml").read_text())
        local["images"]["traefik"] = upgraded
        (notes.dir / "local.yaml").write_text(yaml.safe_dump(local))
        port = notes.env.lane.https_port
        with (
            HttpsLoad(notes.domain, notes.env.roots, threads=2, max_seconds=300, port=port) as notes_load,
            HttpsLoad(BLOG_DOMAIN, notes.env.roots, threads=2, max_seconds=300, port=port) as blog_load,
            FreshConnectionLoad(BLOG_DOMAIN, notes.env.roots, threads=1, max_seconds=300, port=port) as fresh_load,
        ):
            time.sleep(2)
            began = time.monotonic()
            done = notes.ck("edge", "up", "--timeout", "120", timeout=300)
            took = time.monotonic() - began
            time.sleep(2)
            results = {"notes": notes_load.stop(), "blog": blog_load.stop(), "blog fresh": fresh_load.stop()}
        print(f"edge upgrade: {took:.1f} s; " + "; ".join(f"{k}: {v}" for k, v in results.items()))
        print(done.stderr)
        assert "upgrading the shared edge: its Traefik's definition changed" in done.stderr, done.stderr
        for name, result in results.items():
            assert result.sent > 50, (name, result)
            assert result.failed == 0, (name, result)
        after = edge_traefik(docker)  # exactly one Traefik: the old one is gone
        assert after.id != before.id
        assert after.config.image == upgraded
        assert not docker.container.exists(before.id)
        (still,) = edge_service(docker, "holder")
        assert (still.id, still.state.started_at) == (holder.id, holder.state.started_at)
        assert {d: certificate_serial(notes, d) for d in serials} == serials
        assert https_as(notes, NOTES_DOMAINS[1]).json() == {"app": NOTES, "version": "v1"}
        assert blog.https("/").json()["app"] == BLOG  # v1 or v2: an earlier test of the module edits it
        again = notes.ck("edge", "up", timeout=120)
        assert "up to date" in again.stderr, again.stderr
    finally:
        blog.ck("down", check=False, timeout=120)
