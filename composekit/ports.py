"""Whether a host TCP port is free to publish."""

from __future__ import annotations

import errno
import socket

__all__ = ["port_is_free"]


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when nothing listens on ``port``: binding it succeeds (and is released at once).

    SO_REUSEADDR, as Docker's proxy sets it, so connections lingering in TIME_WAIT from a stack that was
    just taken down do not count as taken; a listening socket still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
