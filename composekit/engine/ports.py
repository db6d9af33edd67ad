"""Whether a host TCP port is free for Traefik to publish: the one check `up` and `doctor` share."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

__all__ = ["SERVER_PORTS", "port_is_free", "server_ports_free"]


def _bind(port: int, host: str) -> None:
    # SO_REUSEADDR, as Docker's proxy sets it, so connections lingering in TIME_WAIT from a stack that was
    # just taken down do not count as taken; a listening socket still does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def _listens_locally(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_is_free(
    port: int,
    host: str = "0.0.0.0",
    *,
    bind: Callable[[int, str], None] = _bind,
    listens: Callable[[int], bool] = _listens_locally,
) -> bool:
    """True when nothing listens on ``port``: binding it succeeds (and is released at once).

    A non-root user (in the docker group, say) may not bind a port below 1024 at all (EACCES), though
    Docker, as root, can publish it: then the port is free unless something answers on it locally.
    Any other error (EADDRNOTAVAIL, ...) is raised for the caller to report.
    """
    try:
        bind(port, host)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        if exc.errno == errno.EACCES:
            return not listens(port)
        raise
    return True


# Run on a remote engine's machine, in a throwaway container on the host network: the same bind test there.
SERVER_PORTS = (
    "import errno, socket, sys\n"
    "for port in sys.argv[1:]:\n"
    "    s = socket.socket()\n"
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    try:\n"
    "        s.bind(('0.0.0.0', int(port)))\n"
    "        print(port, 'free')\n"
    "    except OSError as exc:\n"
    "        print(port, 'taken' if exc.errno == errno.EADDRINUSE else f'error {exc.strerror}')\n"
    "    finally:\n"
    "        s.close()\n"
)
ServerPython = Callable[[str, str, list[str], dict[str, str], str], str]  # image, code, args, mounts, network


def server_ports_free(run: ServerPython, image: str, ports: tuple[int, ...]) -> Callable[[int], bool]:
    """port_is_free on a remote engine's machine: one throwaway container of ``image`` answers for ``ports``."""
    answers: dict[int, str] = {}
    for line in run(image, SERVER_PORTS, [str(p) for p in ports], {}, "host").splitlines():
        port, _, state = line.partition(" ")
        answers[int(port)] = state

    def free(port: int) -> bool:
        state = answers.get(port, "error no answer")
        if state.startswith("error"):
            raise OSError(0, state[6:])
        return state == "free"

    return free
