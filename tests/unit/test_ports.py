from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from composekit.config.project import load_project
from composekit.engine import steps
from composekit.engine.ports import port_is_free
from composekit.errors import PortInUseError
from composekit.verify.checks import Status
from composekit.verify.host_doctor import check_ports


def test_listening_port_is_taken_and_closed_port_is_free() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", 0))
        port = server.getsockname()[1]
        server.listen()
        assert port_is_free(port) is False
    assert port_is_free(port) is True


def test_time_wait_connections_do_not_count_as_taken() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end lingers in TIME_WAIT
        client.close()
    assert port_is_free(port) is True


def _refuse(code: int) -> Callable[[int, str], None]:
    def bind(port: int, host: str) -> None:
        raise OSError(code, os.strerror(code))

    return bind


def test_eacces_is_free_unless_something_answers_locally() -> None:
    """A non-root user may not bind below 1024 (EACCES) though Docker can publish there: not "in use"."""
    assert port_is_free(80, bind=_refuse(errno.EACCES), listens=lambda port: False) is True
    assert port_is_free(80, bind=_refuse(errno.EACCES), listens=lambda port: True) is False


def test_eaddrinuse_is_taken_whatever_answers_locally() -> None:
    assert port_is_free(80, bind=_refuse(errno.EADDRINUSE), listens=lambda port: False) is False


def test_other_bind_errors_are_raised() -> None:
    with pytest.raises(OSError, match=os.strerror(errno.EADDRNOTAVAIL)) as caught:
        port_is_free(80, bind=_refuse(errno.EADDRNOTAVAIL), listens=lambda port: False)
    assert caught.value.errno == errno.EADDRNOTAVAIL


CONFIG = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


def test_up_and_doctor_agree_on_a_free_privileged_port_as_non_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both go through ports.port_is_free: EACCES with nothing listening passes both, a listener fails both."""
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(CONFIG))
    project = load_project((tmp_path / "composekit.yaml",))
    listening = {443}

    def shared(port: int, host: str = "0.0.0.0") -> bool:
        return port_is_free(port, host, bind=_refuse(errno.EACCES), listens=lambda p: p in listening)

    monkeypatch.setattr(steps, "port_is_free", shared)
    results = check_ports(project.config, [], port_free=shared)
    assert [(r.name, r.status, r.detail) for r in results] == [
        ("port 80", Status.OK, "free (ports/http)"),
        ("port 443", Status.FAIL, "in use by another process (ports/https); Traefik cannot publish it"),
    ]
    with pytest.raises(PortInUseError) as caught:
        steps.check_ports(project, {})
    assert str(caught.value) == (
        f"port 443 (ports/https in {project.source}) is already in use by another process, so Traefik cannot "
        "publish it; stop that process (`ss -ltnp 'sport = :443'` shows it) or choose another port under "
        "ports/https. Nothing was started or changed."
    )
    listening.clear()
    steps.check_ports(project, {})  # before the fix, EACCES on port 80 read as "already in use"
    assert all(r.status is Status.OK for r in check_ports(project.config, [], port_free=shared))


def _unprivileged_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or _unprivileged_port_start() <= 7,
    reason="needs root (to drop to nobody) and setpriv, with ports below 1024 privileged",
)
def test_a_real_non_root_process_sees_a_free_privileged_port_as_free() -> None:
    """No fakes: as user nobody, binding port 7 fails with EACCES; nothing listens there, so it is free."""
    probe = (
        "import errno, socket\n"
        "from composekit.engine.ports import port_is_free\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.bind(('0.0.0.0', 7))\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode[exc.errno])\n"
        "print(port_is_free(7))\n"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["EACCES", "True"]
