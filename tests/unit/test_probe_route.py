"""Where a deploy's probes reach the server: at its address when this machine can reach it, else through SSH (a
second connection forwarding the server's published ports), else a refusal before anything changes. And the probe
stream's own errors: reported, never a silent death."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import pytest
import yaml

import composekit.deploy
import composekit.deploy.self_check
from composekit.config.project import Project, load_project
from composekit.engine import probes as probe_module
from composekit.engine import target
from composekit.engine.probes import ProbeReport, ProbeStream, check_probe_route, public_endpoint
from composekit.engine.ssh import SshDestination, SshTunnel
from composekit.engine.switch import SwitchResult
from composekit.engine.target import Engine, Target, connect, not_reachable, server_ip, target_address
from composekit.engine.wait import Deadline
from composekit.errors import HttpCheckError, SelfCheckError, SshError, UserError
from composekit.verify.http import Endpoint, HttpClient

UNRESOLVABLE = "app-server.invalid"  # RFC 6761: never resolves


def project(tmp_path: Path) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {
        "name": "shop",
        "domain": "shop.example.com",
        "app": {"module": "app.main:app"},
        "ports": {"http": 8080, "https": 8443},
    }
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


# which servers are not reachable from here -------------------------------------------------------------------


def test_a_name_that_does_not_resolve_here_is_not_reachable() -> None:
    assert not_reachable(UNRESOLVABLE) == f"the name {UNRESOLVABLE} does not resolve on this machine"
    assert not_reachable("203.0.113.7") is None
    assert not_reachable("[2001:db8::7]") is None
    assert not_reachable("vps.example", lookup=lambda name: "198.51.100.4") is None


def test_a_server_behind_a_proxy_is_not_reachable_even_at_an_address() -> None:
    assert not_reachable("10.0.0.5", {"proxyjump": "bastion"}) == "ssh reaches 10.0.0.5 through ProxyJump bastion"
    assert not_reachable("10.0.0.5", {"proxycommand": "ssh -W %h:%p bastion"}) == (
        "ssh reaches 10.0.0.5 through ProxyCommand ssh -W %h:%p bastion"
    )
    assert not_reachable("10.0.0.5", {"proxycommand": "none"}) is None


# probes through a second SSH connection ----------------------------------------------------------------------


class FakeTunnel:
    """SshTunnel without ssh: records what it was opened for."""

    opened: ClassVar[list[tuple[int, ...]]] = []

    def __init__(
        self, dest: SshDestination, settings: Mapping[str, str], timeout: float = 15, ports: tuple[int, ...] = ()
    ) -> None:
        self.ports = ports
        self.pid = 4242 if ports else 4241

    @property
    def engine_url(self) -> str:
        return "unix:///tmp/composekit-ssh-x/docker.sock"

    def port_socket(self, port: int) -> str | None:
        return f"/tmp/composekit-ssh-y/port-{port}.sock" if port in self.ports else None

    def __enter__(self) -> FakeTunnel:
        FakeTunnel.opened.append(self.ports)
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        pass


@pytest.fixture
def ssh_alias(monkeypatch: pytest.MonkeyPatch) -> Target:
    """ssh://app-server: an alias whose HostName resolves only beyond a jump host."""
    FakeTunnel.opened = []
    monkeypatch.setattr(target, "SshTunnel", FakeTunnel)
    monkeypatch.setattr(target, "ssh_settings", lambda dest: {"hostname": UNRESOLVABLE, "port": "22"})
    return Target("ssh://app-server", "--host")


def test_an_unreachable_ssh_server_is_probed_through_a_second_connection(tmp_path: Path, ssh_alias: Target) -> None:
    p = project(tmp_path)
    with connect(ssh_alias, ports=(8080, 8443)) as engine:
        assert FakeTunnel.opened == [(), (8080, 8443)]
        assert engine.host == "unix:///tmp/composekit-ssh-x/docker.sock"
        assert engine.unreachable == f"the name {UNRESOLVABLE} does not resolve on this machine"
        check_probe_route(p, engine)  # no refusal
        endpoint = public_endpoint(p, engine)
        assert engine.describe() == (
            "ssh://app-server (from --host), through one SSH connection (ssh pid 4241); probes through a second one "
            f"(ssh pid 4242: the name {UNRESOLVABLE} does not resolve on this machine)"
        )
    assert endpoint == Endpoint(
        "shop.example.com",
        UNRESOLVABLE,
        8080,
        8443,
        "/tmp/composekit-ssh-y/port-8080.sock",
        "/tmp/composekit-ssh-y/port-8443.sock",
    )
    assert endpoint.connect_url("https", "/health") == "https://127.0.0.1:8443/health"
    assert endpoint.where("https") == f"{UNRESOLVABLE} port 8443 (through SSH, at the server's 127.0.0.1)"


def test_a_reachable_ssh_server_needs_no_second_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeTunnel.opened = []
    monkeypatch.setattr(target, "SshTunnel", FakeTunnel)
    monkeypatch.setattr(target, "ssh_settings", lambda dest: {"hostname": "203.0.113.7"})
    with connect(Target("ssh://vps", "--host"), ports=(80, 443)) as engine:
        assert FakeTunnel.opened == [()]
        assert engine.probes is None and engine.unreachable is None
        assert public_endpoint(project(tmp_path), engine) == Endpoint("shop.example.com", "203.0.113.7", 8080, 8443)


def test_without_the_ports_an_unreachable_server_is_refused_before_anything_changes(
    tmp_path: Path, ssh_alias: Target
) -> None:
    with connect(ssh_alias) as engine, pytest.raises(UserError) as caught:
        check_probe_route(project(tmp_path), engine)
    assert FakeTunnel.opened == [()]
    assert str(caught.value) == (
        f"cannot deploy to ssh://app-server (from --host): the name {UNRESOLVABLE} does not resolve on this machine, "
        "so composekit could not probe the stack through Traefik (ports 8080 and 8443 of the server) while it "
        "deploys. Nothing was changed. Fix: open the engine with connect(target, ports=(8080, 8443)), so that the "
        "probes go through SSH"
    )


def test_a_tcp_engine_the_probes_cannot_reach_is_refused_before_the_deploy_touches_it(tmp_path: Path) -> None:
    class NoDocker:
        def __init__(self, engine: Engine) -> None:
            self.engine = engine

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the deploy asked the engine: {name}")

    with connect(Target(f"tcp://{UNRESOLVABLE}:2376", "DOCKER_HOST")) as engine:
        with pytest.raises(UserError) as caught:
            composekit.deploy.up(project(tmp_path), docker=NoDocker(engine), engine=engine)  # type: ignore[arg-type]
        with pytest.raises(UserError) as by_rollback:
            composekit.deploy.rollback(project(tmp_path), docker=NoDocker(engine), engine=engine)  # type: ignore[arg-type]
    assert str(caught.value) == str(by_rollback.value)
    assert str(caught.value) == (
        f"cannot deploy to tcp://{UNRESOLVABLE}:2376 (from DOCKER_HOST): the name {UNRESOLVABLE} does not resolve "
        "on this machine, so composekit could not probe the stack through Traefik (ports 8080 and 8443 of the "
        "server) while it deploys. Nothing was changed. Fix: reach the engine over SSH (host: ssh://USER@SERVER or "
        "an alias of your SSH config: the probes then go through the SSH connection), or name the server by an "
        "address this machine resolves"
    )


def test_resolve_server_is_refused_when_the_server_is_not_reachable_from_here() -> None:
    engine = Engine(Target("ssh://app-server", "--host"), address=UNRESOLVABLE, unreachable="it does not resolve")
    with pytest.raises(UserError) as caught:
        server_ip(engine)
    assert str(caught.value) == (
        "--resolve server: it does not resolve, so smoke cannot check the server from here as a visitor would; pass "
        "--resolve DOMAIN:PUBLIC_IP (the server's public address), or --no-smoke"
    )
    assert server_ip(Engine(Target("ssh://vps", "--host"), address="203.0.113.7")) == "203.0.113.7"


def test_smoke_resolve_server_is_refused_for_a_server_not_reachable_from_here(ssh_alias: Target) -> None:
    """`composekit smoke --resolve server` finds the address without connecting (target_address)."""
    for unreachable in (ssh_alias, Target(f"tcp://{UNRESOLVABLE}:2376", "DOCKER_HOST")):
        with pytest.raises(UserError) as caught:
            target_address(unreachable)
        assert str(caught.value) == (
            f"--resolve server: the name {UNRESOLVABLE} does not resolve on this machine, so smoke cannot check the "
            "server from here as a visitor would; pass --resolve DOMAIN:PUBLIC_IP (the server's public address)"
        )
    assert target_address(Target("tcp://203.0.113.7:2376", "DOCKER_HOST")) == "203.0.113.7"


def test_the_probe_tunnel_forwards_each_port_to_the_servers_loopback() -> None:
    tunnel = SshTunnel(SshDestination("ssh://app-server", "app-server"), {}, ports=(80, 443))
    tunnel._dir = "/tmp/composekit-ssh-z"
    argv = tunnel.argv()
    assert argv[-6:] == [
        "-L",
        "/tmp/composekit-ssh-z/port-80.sock:127.0.0.1:80",
        "-L",
        "/tmp/composekit-ssh-z/port-443.sock:127.0.0.1:443",
        "--",
        "app-server",
    ]
    assert tunnel.socket_refused() is None  # its "open failed" lines are never about the Docker socket


# the HTTP client at a name, and through a forwarded socket -----------------------------------------------------


def test_a_name_as_the_address_is_an_http_check_error_not_a_crash() -> None:
    endpoint = Endpoint("shop.example.com", UNRESOLVABLE)
    assert endpoint.connect_url("https", "/health") == f"https://{UNRESOLVABLE}:443/health"
    with HttpClient(endpoint, timeout=5) as client, pytest.raises(HttpCheckError) as caught:
        client.get("https", "/health", verify=False)
    assert str(caught.value).startswith(f"GET https://shop.example.com/health (at {UNRESOLVABLE} port 443) failed: ")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.path} Host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        conn, _ = self.socket.accept()
        return conn, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port) client address


def test_a_request_through_a_forwarded_socket_keeps_the_domain_as_host(tmp_path: Path) -> None:
    path = str(tmp_path / "port-8080.sock")
    server = _UnixHttpServer(path, _Handler)
    # shutdown() waits for serve_forever's next poll (0.5 s by default).
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        endpoint = Endpoint("shop.example.com", UNRESOLVABLE, 8080, 8443, http_socket=path)
        with HttpClient(endpoint, timeout=5) as client:
            answer = client.get("http", "/health")
    finally:
        server.shutdown()
        server.server_close()
    assert (answer.status, answer.text, answer.url) == (
        200,
        "/health Host=shop.example.com:8080",
        "http://shop.example.com:8080/health",
    )


# the probe stream never dies silently ------------------------------------------------------------------------


def test_an_error_in_the_probe_thread_is_reported_and_fails_the_self_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(HttpClient):
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise ValueError(f"'{UNRESOLVABLE}' does not appear to be an IPv4 or IPv6 address")

    monkeypatch.setattr(probe_module, "HttpClient", Broken)
    p = project(tmp_path)
    stream = ProbeStream(p, interval=0.01).start()
    stream._thread.join(timeout=10)  # it ends by itself on the error (the old one died without a word)
    probes = stream.stop()
    assert probes == ProbeReport(stopped=f"ValueError: '{UNRESOLVABLE}' does not appear to be an IPv4 or IPv6 address")
    assert not probes.passed
    recorded: list[str] = []
    monkeypatch.setattr(
        composekit.deploy.self_check,
        "record_release",
        lambda project, docker, release, h, **_: recorded.append(release),
    )
    result = SwitchResult("r2", ["shop-app-2"], True, 3.2, "h2", probes, "sha256:old")
    with pytest.raises(SelfCheckError) as caught:
        composekit.deploy.self_check.self_check(p, None, Deadline(60), result, lambda _: None, None, False)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "the self-check failed: 0 probes through Traefik during the switch, 0 failed, slowest 0 ms; the probe stream "
        f"stopped early: ValueError: '{UNRESOLVABLE}' does not appear to be an IPv4 or IPv6 address; release r2 is "
        "serving: `composekit rollback` switches back (`up --rollback-on-error` does it by itself)"
    )
    assert recorded == ["r2"]


# doctor: a server this machine cannot resolve ------------------------------------------------------------------


def test_doctor_of_a_server_that_does_not_resolve_here_asks_for_its_ip(tmp_path: Path) -> None:
    """The server's name was taken as the IP the domain must point at: ipaddress.ip_address() crashed doctor."""
    from composekit.verify.doctor import DoctorOptions, run_doctor

    from .test_doctor import FakeEngine

    def server_python(image: str, code: str, args: list[str], mounts: dict[str, str], network: str) -> str:
        if mounts:  # the disk or acme.json
            return "missing" if "/acme" in mounts.values() else f"{100 * 1024**3} 0 {50 * 1024**3}"
        return "\n".join(f"{port} free" for port in args)

    server = Engine(
        Target("ssh://app-server", "--host"),
        host="unix:///tmp/x.sock",
        address=UNRESOLVABLE,
        unreachable=f"the name {UNRESOLVABLE} does not resolve on this machine",
    )
    config = project(tmp_path).config_files

    def doctor(expect: tuple[str, ...]) -> tuple[str, str, str | None]:
        report = run_doctor(
            DoctorOptions(config, expect),
            probe=lambda name: FakeEngine(volumes={"shop_acme": "/x"}),
            resolver=lambda domain: ["203.0.113.7"],
            server=server,
            server_python=server_python,
            local_daemon=lambda info: None,
        )
        dns = next(c for c in report.checks if c.name == "dns")
        return dns.status, dns.detail, dns.fix

    assert doctor(()) == (
        "warn",
        f"not checked: the name {UNRESOLVABLE} does not resolve on this machine, so its public IP is not known here",
        "state the server's public IP with --expect-ip PUBLIC_IP: shop.example.com must point at it",
    )
    assert doctor(("203.0.113.7",))[:2] == ("ok", "shop.example.com -> 203.0.113.7, as expected")


# the probes' SSH connection refused by the server: said at once, not after the whole --timeout -------------------


def test_a_server_that_refuses_tcp_forwarding_is_named_with_the_fix(tmp_path: Path) -> None:
    settings = {"hostname": "10.0.0.5", "port": "22", "user": "deploy"}
    tunnel = SshTunnel(SshDestination("ssh://app-server", "app-server"), settings, ports=(80, 443))
    tunnel._dir = str(tmp_path)
    (tmp_path / "ssh.log").write_text("channel 2: open failed: connect failed: Connection refused\n")
    assert tunnel.forwarding_refused() is None  # nothing listens there yet: Traefik is starting
    (tmp_path / "ssh.log").write_text("channel 3: open failed: administratively prohibited: open failed\n")
    assert tunnel.forwarding_refused() == (
        "the server 10.0.0.5 refuses to forward TCP ports over SSH (ssh: channel 3: open failed: administratively "
        "prohibited: open failed), and composekit probes the stack through such a forward because the server is "
        "not reachable from here; allow it for deploy in the server's sshd_config (AllowTcpForwarding local) and "
        "reload sshd"
    )


class RefusedProbes:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path

    def lost(self) -> str | None:
        return None

    def forwarding_refused(self) -> str | None:
        return "the server 10.0.0.5 refuses to forward TCP ports over SSH (...)"

    def port_socket(self, port: int) -> str:
        return str(self.dir / f"port-{port}.sock")  # nothing listens: every probe fails


@pytest.mark.parametrize("wait", ["routed", "generation"])
def test_the_waits_end_at_once_when_the_probes_ssh_connection_cannot_carry_them(tmp_path: Path, wait: str) -> None:
    engine = Engine(
        Target("ssh://app-server", "--host"),
        address=UNRESOLVABLE,
        unreachable="it does not resolve",
        probes=RefusedProbes(tmp_path),  # type: ignore[arg-type]
    )
    deadline = Deadline(120)

    def run() -> None:
        if wait == "routed":
            probe_module.wait_routed(project(tmp_path), deadline, engine)
        else:
            probe_module.wait_generation(project(tmp_path), "g1", deadline, "switching", engine=engine)

    with pytest.raises(SshError) as caught:
        run()
    assert deadline.elapsed() < 10
    said = {
        "routed": "the app is healthy, but its route cannot be probed",
        "generation": "Traefik's routes cannot be probed",
    }[wait]
    assert str(caught.value) == f"{said}: the server 10.0.0.5 refuses to forward TCP ports over SSH (...)"
