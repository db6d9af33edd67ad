"""Whether a host TCP port is free to publish."""

from __future__ import annotations

import errno
import socket

__all__ = ["port_is_free"]


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when nothing listens on ``port``: binding it succeeds (and is released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
