"""Which engine a command drives (--host, config host:, DOCKER_HOST, context) and the SSH errors, word for word."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from composekit.cli import app as cli
from composekit.config.project import load_project
from composekit.config.ssh_url import HOST_FORMS, SSH_FORM, host_problem
from composekit.engine import docker_cli
from composekit.engine.docker import Docker
from composekit.engine.ssh import SshDestination, SshTunnel, parse_ssh_url, ssh_failure, ssh_settings
from composekit.engine.steps import compose_secrets
from composekit.engine.swarm.image import _node_target
from composekit.engine.target import Engine, Target, choose_target, connect, resolve_address, target_address
from composekit.errors import ConfigError, DockerError, HealthTimeoutError, SshError, UserError

SOCKET_PATH = f"expected {SSH_FORM}: the path is the server's Docker socket, such as /run/user/1000/docker.sock"

SETTINGS = {
    "hostname": "203.0.113.7",
    "port": "2222",
    "user": "deploy",
    "userknownhostsfile": "/home/me/.ssh/known_hosts /home/me/.ssh/known_hosts2",
}
DEST = SshDestination("ssh://vps", "vps")


def contexts(name: str | None) -> tuple[str, str]:
    table = {None: ("default", "unix:///var/run/docker.sock"), "staging": ("staging", "ssh://deploy@staging.example")}
    return table[name][0], table[name][1]


def test_the_option_wins_over_config_environment_and_context() -> None:
    env = {"DOCKER_HOST": "tcp://10.0.0.9:2375"}
    assert choose_target("ssh://a", "ssh://b", "prod.yaml", env, contexts) == Target("ssh://a", "--host")
    assert choose_target(None, "ssh://b", "prod.yaml", env, contexts) == Target("ssh://b", "prod.yaml: host")
    assert choose_target(None, None, "prod.yaml", env, contexts) == Target("tcp://10.0.0.9:2375", "DOCKER_HOST")
    assert choose_target(None, None, "prod.yaml", {}, contexts) == Target(
        "unix:///var/run/docker.sock", 'docker context "default"', "default"
    )


def test_a_context_name_is_resolved_to_its_endpoint_and_named() -> None:
    target = choose_target("staging", None, "c.yaml", {}, contexts)
    assert target == Target("ssh://deploy@staging.example", '--host (docker context "staging")', "staging")
    assert target.is_ssh
    assert target.describe() == 'ssh://deploy@staging.example (from --host (docker context "staging"))'


def test_docker_context_variable_picks_the_context() -> None:
    assert choose_target(None, None, "c.yaml", {"DOCKER_CONTEXT": "staging"}, contexts).source == (
        'docker context "staging"'
    )


@pytest.mark.parametrize(
    "value",
    [
        "ssh://vps",
        "ssh://deploy@203.0.113.7:2222",
        "ssh://vps/",
        "ssh://deploy@vps/run/user/1000/docker.sock",
        "unix:///run/docker.sock",
        "tcp://10.0.0.9:2375",
        "staging",
        "my-ctx.2",
    ],
)
def test_accepted_host_forms(value: str) -> None:
    assert host_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "http://vps",
            f"expected {SSH_FORM}, unix:///path/to/docker.sock, tcp://host:port or a Docker context name",
        ),
        ("ssh://vps:99999", f"expected {SSH_FORM} with a port from 1 to 65535"),
        ("ssh://me:pw@vps", f"expected {SSH_FORM}, with no query or password"),
        ("ssh://vps?socket=/x", f"expected {SSH_FORM}, with no query or password"),
        ("ssh://vps/run/../etc/docker.sock", SOCKET_PATH),
        ("ssh://vps/run//docker.sock", SOCKET_PATH),
        ("ssh://vps/run/docker/", SOCKET_PATH),
        ("unix://relative", "expected unix:///absolute/path"),
        (
            "my context",
            f"expected {SSH_FORM}, unix:///path/to/docker.sock, tcp://host:port or a Docker context name, with no "
            "spaces or control characters",
        ),
        ("ssh://vps\n", f"expected {SSH_FORM}, with no spaces or control characters"),
        ("unix:///run/docker.sock\t", f"expected {HOST_FORMS}, with no spaces or control characters"),
    ],
)
def test_refused_host_forms(value: str, problem: str) -> None:
    assert host_problem(value) == problem
    if value.startswith("ssh://"):
        with pytest.raises(ValueError, match=re.escape(problem)):
            parse_ssh_url(value, {})


def test_parse_ssh_url_keeps_user_port_and_the_ssh_config_of_the_environment() -> None:
    dest = parse_ssh_url("ssh://deploy@vps:2222", {"COMPOSEKIT_SSH_CONFIG": "/ci/ssh_config"})
    assert dest == SshDestination("ssh://deploy@vps:2222", "vps", "deploy", 2222, "/ci/ssh_config")
    assert dest.command() == "ssh -F /ci/ssh_config -l deploy -p 2222 vps"
    assert parse_ssh_url("ssh://vps", {}).command() == "ssh vps"


def test_the_url_path_names_the_servers_docker_socket_and_the_tunnel_forwards_to_it() -> None:
    assert parse_ssh_url("ssh://vps", {}).socket == "/var/run/docker.sock"
    assert parse_ssh_url("ssh://vps/", {}).socket == "/var/run/docker.sock"
    rootless = parse_ssh_url("ssh://deploy@vps:2222/run/user/1000/docker.sock", {})
    assert rootless == SshDestination(
        "ssh://deploy@vps:2222/run/user/1000/docker.sock", "vps", "deploy", 2222, None, "/run/user/1000/docker.sock"
    )
    assert rootless.command() == "ssh -l deploy -p 2222 vps"  # the socket is no part of the login
    tunnel = SshTunnel(rootless, SETTINGS)
    tunnel.socket = "/tmp/x/docker.sock"
    assert tunnel.argv()[-4:] == ["-L", "/tmp/x/docker.sock:/run/user/1000/docker.sock", "--", "vps"]


def test_a_socket_the_server_does_not_open_is_said_with_what_to_check(tmp_path: Path) -> None:
    tunnel = SshTunnel(parse_ssh_url("ssh://vps/run/user/1000/docker.sock", {}), SETTINGS)
    tunnel._dir = str(tmp_path)
    log = tmp_path / "ssh.log"
    log.write_text("")
    assert tunnel.socket_refused() is None
    log.write_text("channel 1: open failed: connect failed: open failed\n")
    assert tunnel.socket_refused() == (
        "the SSH connection to ssh://vps/run/user/1000/docker.sock works, but the server did not open its Docker "
        "socket /run/user/1000/docker.sock (ssh: channel 1: open failed: connect failed: open failed); check on the "
        "server that Docker runs and listens there (`ls -l /run/user/1000/docker.sock`) and that deploy may use it "
        "(a member of the group docker: `usermod -aG docker deploy`); for rootless Docker, put its socket after the "
        "host, as in ssh://deploy@vps/run/user/1000/docker.sock"
    )
    # root may use any socket: only whether Docker listens there is in question.
    tunnel.settings["user"] = "root"
    said = tunnel.socket_refused()
    assert said is not None and "group docker" not in said and "(`ls -l /run/user/1000/docker.sock`); " in said


def test_the_tunnel_checks_the_host_key_whatever_the_ssh_config_says() -> None:
    tunnel = SshTunnel(DEST, SETTINGS)
    tunnel.socket = "/tmp/x/docker.sock"
    argv = tunnel.argv()
    assert argv[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    assert argv[-4:] == ["-L", "/tmp/x/docker.sock:/var/run/docker.sock", "--", "vps"]


def test_unknown_host_key() -> None:
    log = (
        "No ED25519 host key is known for [203.0.113.7]:2222 and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    assert ssh_failure(DEST, SETTINGS, log) == (
        "ssh://vps: the SSH host key of [203.0.113.7]:2222 is unknown (not in /home/me/.ssh/known_hosts) and "
        "composekit never accepts one silently; run `ssh vps` once, check that the fingerprint it shows is the "
        "server's (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server) and answer yes"
    )


def test_changed_host_key() -> None:
    log = (
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Host key for [203.0.113.7]:2222 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    assert ssh_failure(DEST, SETTINGS, log) == (
        "ssh://vps: the SSH host key of [203.0.113.7]:2222 has CHANGED since it was recorded in "
        "/home/me/.ssh/known_hosts, so composekit did not connect (someone may be intercepting the connection, or "
        "the server was reinstalled); only if you know the server's key changed, remove the old one with "
        "`ssh-keygen -f /home/me/.ssh/known_hosts -R '[203.0.113.7]:2222'`, then check the new fingerprint and "
        "accept it with `ssh vps`"
    )


def test_refused_key() -> None:
    assert ssh_failure(DEST, SETTINGS, "deploy@203.0.113.7: Permission denied (publickey).\n") == (
        "ssh://vps: the server [203.0.113.7]:2222 refused the SSH key for user deploy "
        "(deploy@203.0.113.7: Permission denied (publickey).); add your public key to ~deploy/.ssh/authorized_keys "
        "on the server, or name the right key with IdentityFile for this host in your SSH config (composekit logs "
        "in with keys only, never a password)"
    )


def test_no_server_listening() -> None:
    assert ssh_failure(
        DEST, {**SETTINGS, "port": "22"}, "ssh: connect to host 203.0.113.7 port 22: Connection refused\n"
    ) == (
        "ssh://vps: cannot connect over SSH to 203.0.113.7: ssh: connect to host 203.0.113.7 port 22: Connection "
        "refused; check the address, the port and that sshd runs there"
    )


def test_ssh_settings_reads_ssh_g() -> None:
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert argv == ["ssh", "-p", "2222", "-G", "--", "vps"]
        return subprocess.CompletedProcess(argv, 0, "user deploy\nhostname 203.0.113.7\nport 2222\n", "")

    assert ssh_settings(SshDestination("ssh://vps:2222", "vps", port=2222), run) == {
        "user": "deploy",
        "hostname": "203.0.113.7",
        "port": "2222",
    }


def test_ssh_settings_failure_is_one_line() -> None:
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 255, "", "/ci/ssh_config line 3: Bad configuration option: Hots\n")

    with pytest.raises(SshError) as caught:
        ssh_settings(DEST, run)
    assert str(caught.value) == (
        "ssh://vps: ssh cannot read its configuration for vps: /ci/ssh_config line 3: Bad configuration option: Hots"
    )


def test_resolve_address_keeps_literals_and_looks_names_up() -> None:
    assert resolve_address("203.0.113.7") == "203.0.113.7"
    assert resolve_address("vps.example", lambda name: "198.51.100.4") == "198.51.100.4"


# the engine in errors, the password for Compose only ------------------------------------------------


CONFIG = "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n"


def project_in(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(CONFIG + extra)
    return tmp_path / "composekit.yaml"


def test_config_host_is_validated_with_the_key_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project((project_in(tmp_path, "host: ssh://vps:99999\n"),))
    assert caught.value.problems == [
        f'{tmp_path}/composekit.yaml: host: expected {SSH_FORM} with a port from 1 to 65535, got "ssh://vps:99999"'
    ]
    assert load_project((project_in(tmp_path, "host: ssh://deploy@vps\n"),)).config.host == "ssh://deploy@vps"


def test_host_option_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    project_in(tmp_path)
    result = CliRunner().invoke(cli, ["--host", "http://vps", "status"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --host: expected {SSH_FORM}, unix:///path/to/docker.sock, tcp://host:port or a "
        'Docker context name, got "http://vps"\n'
    )


def test_the_password_is_read_for_the_compose_process_and_a_missing_file_names_the_key(tmp_path: Path) -> None:
    config = project_in(tmp_path, "database: {password_file: secrets/pw}\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("p$ss\n")
    project = load_project((config,))
    assert compose_secrets(project) == {"COMPOSEKIT_DB_PASSWORD": "p$ss\n"}
    (tmp_path / "secrets" / "pw").unlink()
    (tmp_path / "secrets" / "pw").mkdir()  # exists (the loader checks that), but cannot be read
    with pytest.raises(ConfigError) as caught:
        compose_secrets(project)
    assert caught.value.problems == [
        f'composekit.yaml: database/password_file: cannot read "secrets/pw" ({tmp_path}/secrets/pw): Is a directory'
    ]


def test_compose_environment_is_set_for_the_call_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSEKIT_DB_PASSWORD", raising=False)
    monkeypatch.setenv("KEPT", "before")
    with docker_cli._environment({"COMPOSEKIT_DB_PASSWORD": "pw", "KEPT": "during"}):
        assert (os.environ["COMPOSEKIT_DB_PASSWORD"], os.environ["KEPT"]) == ("pw", "during")
    assert "COMPOSEKIT_DB_PASSWORD" not in os.environ and os.environ["KEPT"] == "before"


class LostEngine(Engine):
    def lost(self) -> str | None:
        return "the SSH connection to ssh://vps was lost (ssh: Connection to 127.0.0.1 closed by remote host.)"


def test_a_docker_error_names_the_engine_and_a_lost_connection(tmp_path: Path) -> None:
    target = Target("ssh://vps", "--host")
    engine = Engine(target, host=f"unix://{tmp_path}/gone.sock")
    with pytest.raises(DockerError) as caught:
        Docker("shop", [], engine=engine).engine_version()
    lines = str(caught.value).splitlines()
    assert lines[:2] == ["cannot reach the Docker engine", "  engine: ssh://vps (from --host)"]
    lost = LostEngine(target, host=f"unix://{tmp_path}/gone.sock")
    with pytest.raises(DockerError) as caught:
        Docker("shop", [], engine=lost).engine_version()
    assert str(caught.value).splitlines()[-1] == (
        "  fix: the SSH connection to ssh://vps was lost (ssh: Connection to 127.0.0.1 closed by remote host.); "
        "run the command again once the server answers `ssh` (nothing else was changed by this call)"
    )


class RefusedEngine(Engine):
    def socket_refused(self) -> str | None:
        return "the SSH connection to ssh://vps works, but the server did not open its Docker socket (...)"


def test_a_docker_error_through_a_socket_the_server_did_not_open_says_so(tmp_path: Path) -> None:
    refused = RefusedEngine(Target("ssh://vps", "--host"), host=f"unix://{tmp_path}/gone.sock")
    with pytest.raises(DockerError) as caught:
        Docker("shop", [], engine=refused).engine_version()
    assert str(caught.value).splitlines()[-1] == (
        "  fix: the SSH connection to ssh://vps works, but the server did not open its Docker socket (...)"
    )


def test_any_error_inside_a_connection_is_tagged_with_the_engine() -> None:
    target = Target("unix:///var/run/docker.sock", "DOCKER_HOST")

    def fail() -> None:
        with connect(target) as engine:
            assert engine.address == "127.0.0.1" and not engine.is_remote
            raise HealthTimeoutError("the stack did not become healthy")

    with pytest.raises(HealthTimeoutError) as caught:
        fail()
    assert caught.value.engine == "unix:///var/run/docker.sock (from DOCKER_HOST)"


def test_the_cli_prints_the_engine_under_every_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import composekit.cli.observe

    def status(project: object, engine: Engine) -> object:
        raise HealthTimeoutError("the stack did not become healthy")

    monkeypatch.chdir(tmp_path)
    project_in(tmp_path)
    monkeypatch.setattr(composekit.cli.observe, "stack_status", status)
    result = CliRunner().invoke(cli, ["--host", "unix:///var/run/docker.sock", "status"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the stack did not become healthy\n  engine: unix:///var/run/docker.sock (from --host)\n"
    )


# doctor against a remote engine: ports, disk and acme.json are read on the server -------------------


def test_server_checks_read_the_server_through_containers() -> None:
    from composekit.verify.host_doctor import ServerChecks

    calls: list[tuple[str, list[str], dict[str, str], str]] = []

    def run(image: str, code: str, args: list[str], mounts: dict[str, str], network: str) -> str:
        calls.append((image, args, mounts, network))
        if "bind" in code:
            return "80 taken\n443 free\n"
        if "disk_usage" in code:
            return "100 60 40\n"
        return "644 2\n"

    server = ServerChecks(run, "python:3.13-slim", "203.0.113.7")
    free = server.port_free((80, 443))
    assert (free(80), free(443)) == (False, True)
    assert server.disk_usage("/var/lib/docker") == (100, 60, 40)
    acme = server.acme_file("shop_acme", exists=True)
    assert (acme.status.value, acme.detail, acme.fix) == (
        "fail",
        "acme.json in volume shop_acme has mode 644: Traefik refuses it and serves its default certificate",
        "on the server: chmod 600 $(docker volume inspect -f '{{.Mountpoint}}' shop_acme)/acme.json",
    )
    assert calls == [
        ("python:3.13-slim", ["80", "443"], {}, "host"),
        ("python:3.13-slim", [], {"/var/lib/docker": "/docker-root"}, "none"),
        ("python:3.13-slim", [], {"shop_acme": "/acme"}, "none"),
    ]


def test_probes_go_to_the_engines_server(tmp_path: Path) -> None:
    from composekit.engine.probes import public_endpoint

    project = load_project((project_in(tmp_path),))
    assert public_endpoint(project).address == "127.0.0.1"
    remote = Engine(Target("ssh://vps", "--host"), host="unix:///tmp/x.sock", address="203.0.113.7")
    endpoint = public_endpoint(project, remote)
    assert (endpoint.domain, endpoint.address, endpoint.https_port) == ("shop.example.com", "203.0.113.7", 443)


def test_up_tests_the_ports_on_the_server_of_a_remote_engine(tmp_path: Path) -> None:
    from composekit.engine.steps import check_ports
    from composekit.errors import PortInUseError

    class ServerDocker(Docker):
        def __init__(self) -> None:
            self.engine = Engine(Target("ssh://vps", "--host"), host="unix:///tmp/x.sock", address="203.0.113.7")
            self.asked: list[tuple[str, list[str], str]] = []

        def run_python(self, image: str, code: str, args: list[str], mounts: dict[str, str], network: str = "") -> str:
            self.asked.append((image, args, network))
            return "80 taken\n443 free\n"

    docker = ServerDocker()
    project = load_project((project_in(tmp_path),))
    with pytest.raises(PortInUseError) as caught:
        check_ports(project, {}, docker)
    assert docker.asked == [("python:3.13-slim", ["80", "443"], "host")]
    refused = ServerDocker()
    refused.run_python = lambda *args: "80 error Permission denied\n443 free\n"  # type: ignore[method-assign]
    with pytest.raises(PortInUseError) as cannot:
        check_ports(project, {}, refused)
    assert str(cannot.value) == (
        f"cannot test port 80 (ports/http in {tmp_path}/composekit.yaml) on the server (ssh://vps): "
        "Permission denied. Nothing was started or changed."
    )
    assert str(caught.value) == (
        f"port 80 (ports/http in {tmp_path}/composekit.yaml) is already in use on the server (ssh://vps) by another "
        "process, so Traefik cannot publish it; stop that process (`ss -ltnp 'sport = :80'` shows it) or choose "
        "another port under ports/http. Nothing was started or changed."
    )


# An ssh host or user beginning with "-" would reach ssh as an option -------------------------------------

DASH_HOST = f'expected {SSH_FORM}: the host "-oproxycommand=x" starts with "-", which ssh would read as an option'
SHELLY = "holds a space, a quote or one of $\\;&<>|(){}, which ssh refuses"
DASH_USER = f'expected {SSH_FORM}: the user "-oProxyCommand=x" starts with "-", which ssh would read as an option'


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ssh://-oProxyCommand=x", DASH_HOST),
        ("ssh://-oProxyCommand=x:22/run/docker.sock", DASH_HOST),
        ("ssh://-oProxyCommand=x@vps", DASH_USER),
        (
            "ssh://vps;id",
            f'expected {SSH_FORM}: the host "vps;id" {SHELLY}',
        ),
        (
            "ssh://a'b@vps",
            f'expected {SSH_FORM}: the user "a\'b" {SHELLY}',
        ),
    ],
)
def test_an_ssh_host_or_user_that_ssh_would_misread_is_refused(value: str, problem: str) -> None:
    assert host_problem(value) == problem
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_ssh_url(value, {})


def test_a_dash_host_is_refused_in_the_config_host_and_swarm_nodes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project((project_in(tmp_path, "host: ssh://-oProxyCommand=x\n"),))
    assert caught.value.problems == [f'{tmp_path}/composekit.yaml: host: {DASH_HOST}, got "ssh://-oProxyCommand=x"']
    with pytest.raises(ConfigError) as caught:
        load_project((project_in(tmp_path, "mode: swarm\nswarm: {nodes: {n1: 'ssh://-oProxyCommand=x@vps'}}\n"),))
    assert caught.value.problems == [
        f'{tmp_path}/composekit.yaml: swarm/nodes: n1: {DASH_USER}, got "ssh://-oProxyCommand=x@vps"'
    ]


def test_a_dash_host_is_refused_in_the_host_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    project_in(tmp_path)
    result = CliRunner().invoke(cli, ["--host", "ssh://-oProxyCommand=x", "status"])
    assert (result.exit_code, result.stderr) == (2, f'error: --host: {DASH_HOST}, got "ssh://-oProxyCommand=x"\n')


def test_a_dash_host_is_refused_in_docker_host_and_docker_contexts() -> None:
    with pytest.raises(UserError) as caught:
        choose_target(None, None, "c.yaml", {"DOCKER_HOST": "ssh://-oProxyCommand=x"}, contexts)
    assert str(caught.value) == f'DOCKER_HOST: {DASH_HOST}, got "ssh://-oProxyCommand=x"'

    def evil(name: str | None) -> tuple[str, str]:
        return "evil", "ssh://-oProxyCommand=x"

    with pytest.raises(UserError) as caught:
        choose_target(None, None, "c.yaml", {}, evil)
    assert str(caught.value) == f'docker context "evil": {DASH_HOST}, got "ssh://-oProxyCommand=x"'
    with pytest.raises(UserError) as caught:
        _node_target("n1", "ssh://-oProxyCommand=x")
    assert str(caught.value) == f'swarm/nodes/n1: {DASH_HOST}, got "ssh://-oProxyCommand=x"'


def test_a_target_built_elsewhere_is_refused_before_ssh_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ssh(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("ssh was run")

    monkeypatch.setattr(subprocess, "run", no_ssh)
    monkeypatch.setattr(subprocess, "Popen", no_ssh)
    target = Target("ssh://-oProxyCommand=x", "test")
    with pytest.raises(UserError) as caught, connect(target, {}):
        pass
    assert str(caught.value) == f'test: {DASH_HOST}, got "ssh://-oProxyCommand=x"'
    with pytest.raises(UserError):
        target_address(target, {})


def test_the_destination_follows_a_double_dash_in_every_ssh_argv() -> None:
    """Defence in depth: with `--`, ssh reads the destination as a host even if validation were bypassed."""
    dest = SshDestination("ssh://x", "-oProxyCommand=x", "deploy", 2222)
    seen: list[list[str]] = []

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    ssh_settings(dest, run)
    tunnel = SshTunnel(dest, SETTINGS)
    tunnel.socket = "/tmp/x/docker.sock"
    for argv in (seen[0], tunnel.argv()):
        assert argv[-2:] == ["--", "-oProxyCommand=x"]
        assert argv.index("--") == len(argv) - 2


def test_the_ssh_command_in_messages_is_quoted_for_a_shell() -> None:
    """A user copies it into a shell: an ssh config file path with a space stays one argument."""
    dest = parse_ssh_url("ssh://deploy@vps", {"COMPOSEKIT_SSH_CONFIG": "/home/me/my ssh/config"})
    assert dest.command() == "ssh -F '/home/me/my ssh/config' -l deploy vps"
