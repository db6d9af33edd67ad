"""A remote engine over SSH, for real: the test environment's own sshd on a loopback port (scripts/sshd.sh),
key-only, with its host key checked, in front of this machine's engine. composekit reaches it as
`host: ssh://composekit-test` (an alias of the ssh config in COMPOSEKIT_SSH_CONFIG) through one SSH tunnel.

One deployment of the PostgreSQL example (module-scoped) carries the checks, in order: the first deploy with a
Pebble certificate, what is mounted (named volumes only: no container mounts the Docker socket), the files that
travel inside compose.yaml arriving byte-identical, the routes file written over the same connection, status,
logs, doctor, a connection lost mid-deploy, a code redeploy, the SSH errors (unknown host key, refused key), the
server's Docker socket named in the URL, and down.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import load_project
from composekit.render.stack import render_stack

from .conftest import REPO, Stack
from .sshd import ALIAS, ssh_config  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "stacks" / "fastapi-postgres"
PASSWORD = "s3cr$t-{not}-$HOME\n"  # "$" must reach the database and the app literally


@pytest.fixture(scope="module")
def remote(ssh_config: Path, make_stack: Any, testenv: Any) -> Stack:  # noqa: F811
    # ssh_config first: set up before make_stack, so torn down after it (make_stack's `down` goes over SSH too).
    stack: Stack = make_stack(EXAMPLE, "remote-pg", host=ALIAS, images={"postgres": testenv.postgres_image})
    (stack.dir / "secrets").mkdir()
    (stack.dir / "secrets" / "db_password").write_text(PASSWORD)
    # Pebble's CA behind a comment with "$": the file must reach Traefik byte for byte (and still be used).
    ca = stack.dir / "pebble-ca.pem"
    ca.write_text("# copied by test_remote: $HOME ${X} $$ stay literal\n" + Path(testenv.pebble_ca).read_text())
    overlay = yaml.safe_load((stack.dir / "local.yaml").read_text())
    overlay["acme"]["ca_certificates"] = [ca.name]
    (stack.dir / "local.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    # "--resolve server": smoke from here to the address the ssh alias reaches (127.0.0.1 here)
    result = stack.ck("up", "--resolve", "server", "--ca-file", str(stack.env.roots))
    assert "smoke" in result.stderr
    assert result.stdout.strip().endswith(f"https://{stack.domain}/")
    assert f"engine: {ALIAS} (from composekit.yaml + local.yaml: host), through one SSH connection" in result.stderr
    return stack


def test_first_deploy_over_ssh_serves_https_with_a_pebble_certificate(remote: Stack) -> None:
    response = remote.wait_https("/")
    assert response.status_code == 200
    issuer = dict(x[0] for x in remote.peer_certificate()["issuer"])
    assert "Pebble" in issuer.get("commonName", "")


def test_only_named_volumes_are_mounted_and_no_container_holds_the_socket(remote: Stack) -> None:
    containers = remote.containers()
    assert {"traefik", "routes", "files", "db", "migrate", "app"} <= set(containers)
    assert "socket-proxy" not in containers
    for service, container in containers.items():
        for mount in container.mounts:
            assert mount.type == "volume", (service, mount)
            assert str(mount.name).startswith("remote-pg_"), (service, mount)
            assert "docker.sock" not in str(mount.destination), (service, mount)
    # The routes container writes Traefik's routes and sees nothing else: never the files volume (the password).
    routes = containers["routes"]
    assert [(str(m.name), str(m.destination)) for m in routes.mounts] == [("remote-pg_routes", "/routes")]


def _exec(stack: Stack, service: str, argv: list[str], user: str | None = None) -> str:
    container = stack.containers()[service]
    return str(stack.docker.container.execute(container, argv, user=user))


def test_the_files_arrive_byte_identical_and_readable_by_their_users(remote: Stack) -> None:
    project = load_project((remote.dir / "composekit.yaml", remote.dir / "local.yaml"))
    configs = render_stack(project).configs
    runtime = resources.files("composekit.runtime")
    cat = ["python3", "-c", "import sys; sys.stdout.write(open(sys.argv[1]).read())"]
    # Traefik: root without capabilities (no CAP_DAC_OVERRIDE), reading files it does not own.
    for path, name in (
        ("/etc/traefik/traefik.yml", "traefik.yml"),
        ("/etc/composekit/acme-ca/0.pem", "acme-ca-0.pem"),
    ):
        # (python-on-whales strips the output's final newline)
        assert _exec(remote, "traefik", ["cat", path]) == configs[name].rstrip("\n"), name
    assert "$HOME ${X} $$" in configs["acme-ca-0.pem"]  # so the comparison above proves the escaping
    # The app (uid 10001, read-only root): its gunicorn settings and the database password.
    assert _exec(remote, "app", ["id", "-u"]) == "10001"
    conf = _exec(remote, "app", [*cat, "/etc/composekit/gunicorn.conf.py"])
    assert conf == runtime.joinpath("gunicorn_conf.py").read_text().rstrip("\n")
    assert _exec(remote, "app", [*cat, "/etc/composekit/db_password"]) == PASSWORD.rstrip("\n")
    # The routes file (middlewares, TLS options, the app's router) was written over the same SSH connection
    # through `docker exec` in the routes container, and Traefik reads it from the routes volume.
    routes = yaml.safe_load(_exec(remote, "traefik", ["cat", "/etc/traefik/dynamic/composekit.yml"]))
    assert "security-headers" in routes["http"]["middlewares"]
    assert routes["tls"]["options"]["default"]["minVersion"] == "VersionTLS12"
    assert routes["http"]["routers"][remote.name]["rule"] == f"Host(`{remote.domain}`)"


def test_status_names_the_engine(remote: Stack) -> None:
    result = remote.ck("status", "--json")
    data = json.loads(result.stdout)
    assert data["engine"].startswith(
        f"{ALIAS} (from composekit.yaml + local.yaml: host), through one SSH connection (ssh pid "
    )
    app = {s["service"]: s for s in data["services"]}["app"]
    # `up` gates on the health path answering through Traefik, not on Docker's next healthcheck interval: the
    # app's Docker health may still be "starting" right after the deploy, never "unhealthy".
    assert (app["status"], app["health"] in ("starting", "healthy")) == ("running", True), app
    plain = remote.ck("status")
    assert f"engine: {ALIAS} (from composekit.yaml + local.yaml: host)" in plain.stderr


def test_logs_over_ssh(remote: Stack) -> None:
    result = remote.ck("logs", "app", "--tail", "20")
    assert "Booting worker" in result.stdout or "Listening at" in result.stdout


def _ssh_child(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and cmdline and cmdline[0] == b"ssh" and b"-L" in cmdline:
            return int(entry.name)
    return None


def _set_version(stack: Stack, version: str) -> None:
    main = stack.dir / "app" / "main.py"
    lines = [line for line in main.read_text().splitlines() if not line.startswith("RELEASE = ")]
    main.write_text(
        "\n".join(lines) + f"\nRELEASE = {version!r}\n\n\n@app.get('/release')\ndef release() -> dict[str, str]:\n"
        "    return {'release': RELEASE}\n"
    )


def test_a_connection_lost_mid_deploy_leaves_the_old_release_serving(remote: Stack) -> None:
    before = remote.containers()["app"].id
    body = remote.wait_https("/").json()
    _set_version(remote, "lost")
    configs = [arg for f in ("composekit.yaml", "local.yaml") for arg in ("-c", f)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "composekit.cli", *configs, "up", "--no-smoke"],
        cwd=remote.dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if "building the app image" in line:
            killed = _ssh_child(proc.pid)
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            break
        assert time.monotonic() < deadline
    _, err = proc.communicate(timeout=300)
    assert killed is not None
    assert proc.returncode == 1, err
    assert f"the SSH connection to {ALIAS} was lost" in err
    assert remote.containers()["app"].id == before
    assert remote.https("/").json() == body
    assert remote.https("/release").status_code == 404  # the new code never started
    # The deploy lock stays on the engine: it could not be removed over the lost connection.
    assert remote.docker.container.exists(f"{remote.name}-deploy-lock")


def test_a_code_redeploy_over_ssh(remote: Stack) -> None:
    # The lost deploy's lock is still there; it records that its holder ran on this machine, whose process is now
    # gone, so this deploy removes it and says so (no --break-lock needed; a holder elsewhere would still need it).
    _set_version(remote, "two")
    result = remote.ck("up", "--no-smoke")
    assert "removing the deploy lock left by " in result.stderr
    assert "that deploy ran on this machine and its process is gone" in result.stderr
    assert remote.wait_https("/release").json() == {"release": "two"}


def test_build_local_ships_the_image_through_the_connection(remote: Stack) -> None:
    # Here the "server" is this machine's engine too: the build and the load meet the same engine, which therefore
    # has every layer of the new image already. So only the image's manifest and config travel (the layer-thin
    # archive, engine/image_archive.py); the stack then runs the loaded image. The savings between two real
    # engines are measured in test_swarm.py (node2).
    _set_version(remote, "built-here")
    result = remote.ck("up", "--build-local", "--no-smoke")
    assert "building the app image on this machine (--build-local)" in result.stderr
    shipped = next(line for line in result.stderr.splitlines() if "bytes sent" in line)
    assert f"shipped remote-pg-app:latest to {ALIAS} (from composekit.yaml + local.yaml: host)" in shipped
    said = re.search(r": ([\d,]+) bytes sent \(0 of (\d+) layers; it had the other (\d+)\)$", shipped)
    assert said is not None and said.group(2) == said.group(3), shipped
    assert int(said.group(1).replace(",", "")) < 1_000_000
    assert remote.wait_https("/release").json() == {"release": "built-here"}


def test_a_server_this_machine_cannot_resolve_is_probed_through_ssh(remote: Stack, ssh_config: Path) -> None:  # noqa: F811
    """An alias whose HostName resolves only beyond a jump host (here: nowhere, app-server.invalid), reached through
    a ProxyCommand: the deploy's probes (routing wait, the probe stream of the switch) go through a second SSH
    connection that forwards Traefik's ports to the server's 127.0.0.1."""
    port = os.environ.get("COMPOSEKIT_SSHD_PORT", "2222")
    path = remote.dir / "ssh_config.behind-jump"
    path.write_text(
        ssh_config.read_text() + "\nHost composekit-behind-jump\n"
        "    HostName app-server.invalid\n"
        f"    Port {port}\n"
        "    User root\n"
        f"    IdentityFile {ssh_config.parent}/client_ed25519\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {ssh_config.parent}/known_hosts\n"
        f"    HostKeyAlias [127.0.0.1]:{port}\n"
        "    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n"
        f"    ProxyCommand ssh -F {path} -W 127.0.0.1:%p composekit-test\n"
    )
    _set_version(remote, "behind-jump")
    configs = [arg for f in ("composekit.yaml", "local.yaml") for arg in ("-c", f)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "composekit.cli",
            *configs,
            "--host",
            "ssh://composekit-behind-jump",
            "up",
            "--no-smoke",
        ],
        cwd=remote.dir,
        env={**os.environ, "COMPOSEKIT_SSH_CONFIG": str(path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    engine = next(line for line in result.stderr.splitlines() if "engine: " in line)
    assert "; probes through a second one (ssh pid " in engine, engine
    assert ": ssh reaches app-server.invalid through ProxyCommand ssh -F " in engine, engine
    check = next(line for line in result.stderr.splitlines() if "self-check: " in line)
    assert re.search(r"self-check: [1-9]\d* probes through Traefik during the switch, 0 failed", check), check
    assert remote.wait_https("/release").json() == {"release": "behind-jump"}


def test_doctor_json_over_ssh(remote: Stack) -> None:
    result = remote.ck("doctor", "--json", check=False)
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert ALIAS in report["subject"]
    assert checks["docker engine"]["status"] == "ok", checks["docker engine"]
    # Read on the server through throwaway containers, not from this machine's disk.
    assert checks["acme.json"]["detail"] == (
        "acme.json in volume remote-pg_acme on the server: mode 600, 1 certificate(s)"
    ), checks["acme.json"]
    assert checks["disk space"]["status"] in ("ok", "warn"), checks["disk space"]
    lane = remote.env.lane  # the ports this lane's stacks publish (lane 0: 80/443)
    held = {checks[f"port {lane.http_port}"]["status"], checks[f"port {lane.https_port}"]["status"]}
    assert held == {"ok"}  # held by this stack's Traefik


def _with_ssh_config(stack: Stack, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = stack.dir / "ssh_config.test"
    path.write_text(text)
    configs = [arg for f in ("composekit.yaml", "local.yaml") for arg in ("-c", f)]
    env = {**os.environ, "COMPOSEKIT_SSH_CONFIG": str(path)}
    return subprocess.run(
        [sys.executable, "-m", "composekit.cli", *configs, *args],
        cwd=stack.dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unknown_host_key_is_a_one_line_error_with_the_fix(remote: Stack, ssh_config: Path) -> None:  # noqa: F811
    empty = remote.dir / "known_hosts.empty"
    empty.write_text("")
    text = ssh_config.read_text().replace(
        f"UserKnownHostsFile {ssh_config.parent}/known_hosts", f"UserKnownHostsFile {empty}"
    )
    result = _with_ssh_config(
        remote, text.replace("StrictHostKeyChecking yes", "StrictHostKeyChecking accept-new"), "status"
    )
    assert result.returncode == 1
    port = os.environ.get("COMPOSEKIT_SSHD_PORT", "2222")
    assert result.stderr == (
        f"error: {ALIAS}: the SSH host key of [127.0.0.1]:{port} is unknown (not in {empty}) and composekit never "
        f"accepts one silently; run `ssh -F {remote.dir / 'ssh_config.test'} composekit-test` once, check that "
        "the fingerprint it shows is the server's (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the "
        "server) and answer yes\n"
    )
    assert empty.read_text() == ""  # accept-new in the user's config did not accept it


def test_a_refused_key_is_a_one_line_error_with_the_fix(remote: Stack, ssh_config: Path) -> None:  # noqa: F811
    other = remote.dir / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    text = ssh_config.read_text().replace(f"IdentityFile {ssh_config.parent}/client_ed25519", f"IdentityFile {other}")
    result = _with_ssh_config(remote, text, "status")
    assert result.returncode == 1
    port = os.environ.get("COMPOSEKIT_SSHD_PORT", "2222")
    assert result.stderr == (
        f"error: {ALIAS}: the server [127.0.0.1]:{port} refused the SSH key for user root (root@127.0.0.1: "
        "Permission denied (publickey).); add your public key to ~root/.ssh/authorized_keys on the server, or name "
        "the right key with IdentityFile for this host in your SSH config (composekit logs in with keys only, never "
        "a password)\n"
    )


def test_the_urls_path_names_the_servers_docker_socket(remote: Stack, tmp_path: Path) -> None:
    """ssh://host/path/to/docker.sock: the tunnel forwards to that socket (rootless Docker's is
    /run/user/UID/docker.sock). This server's engine listens at /var/run/docker.sock only; here it is also reached
    under a second path (a symlink to its socket, on the server: this machine), and a path where nothing listens
    fails with the reason and what to check."""
    other = tmp_path / "other-path" / "docker.sock"
    other.parent.mkdir()
    other.symlink_to("/var/run/docker.sock")
    url = f"{ALIAS}{other}"
    found = json.loads(remote.ck("--host", url, "status", "--json").stdout)
    assert found["engine"].startswith(f"{url} (from --host), through one SSH connection (ssh pid "), found["engine"]
    assert {s["service"]: s["status"] for s in found["services"]}["app"] == "running", found
    nowhere = f"{ALIAS}{tmp_path}/nothing-listens/docker.sock"
    result = remote.ck("--host", nowhere, "status", check=False)
    assert result.returncode == 1, result.stderr
    assert f"  engine: {nowhere} (from --host), through one SSH connection" in result.stderr, result.stderr
    fix = result.stderr.strip().splitlines()[-1]
    assert fix.startswith(
        f"  fix: the SSH connection to {nowhere} works, but the server did not open its Docker socket "
        f"{tmp_path}/nothing-listens/docker.sock (ssh: channel "
    ), result.stderr
    assert remote.https("/").status_code == 200  # nothing changed


def test_down_over_ssh_keeps_the_volumes(remote: Stack) -> None:
    result = remote.ck("down")
    assert "kept volumes" in result.stderr
    assert remote.containers() == {}
