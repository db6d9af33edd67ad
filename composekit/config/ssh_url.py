"""The Docker engine addresses composekit accepts (`host:`, --host, swarm/nodes): the SSH URL grammar, checked
as OpenSSH would read it, and the other forms (unix://, tcp://, a context name)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .fields import got

__all__ = ["DEFAULT_REMOTE_SOCKET", "HOST_FORMS", "SSH_FORM", "host_problem", "ssh_socket", "ssh_url_problem"]

HOST_FORMS = (
    "ssh://[user@]host[:port][/path/to/docker.sock], unix:///path/to/docker.sock, tcp://host:port or a Docker "
    "context name"
)
SSH_FORM = "ssh://[user@]host[:port][/path/to/docker.sock]"
# The server's Docker socket when an ssh:// URL names none (rootful Docker; rootless: /run/user/UID/docker.sock).
DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock"
_CONTEXT_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$(?!\n)")


def host_problem(value: str) -> str | None:
    """Why ``value`` is not a Docker engine composekit can drive (None when it is one): `host:` and --host."""
    if value.startswith("ssh://"):
        return ssh_url_problem(value)
    if not value.isprintable() or any(c.isspace() for c in value):  # urlsplit would silently drop tabs, newlines
        return f"expected {HOST_FORMS}, with no spaces or control characters"
    if "://" not in value:
        return None if _CONTEXT_NAME_RE.match(value) else f"expected {HOST_FORMS}"
    parts = urlsplit(value)
    if parts.scheme == "ssh":
        return ssh_url_problem(value)
    if parts.scheme == "unix":
        return None if parts.path.startswith("/") and not parts.netloc else "expected unix:///absolute/path"
    if parts.scheme == "tcp":
        return None if parts.hostname else "expected tcp://host:port"
    return f"expected {HOST_FORMS}"


# What OpenSSH itself refuses in a host or user name from its command line (ssh.c: valid_hostname, valid_ruser):
# whitespace, quotes and shell characters; a leading "-" would be read as an option.
_SSH_NAME_RE = re.compile(r"^[^-\s'`\"$\\;&<>|(){}][^\s'`\"$\\;&<>|(){}]*$(?!\n)")


def _ssh_name_problem(what: str, name: str) -> str | None:
    if name.startswith("-"):
        return f'expected {SSH_FORM}: the {what} {got(name)} starts with "-", which ssh would read as an option'
    if not _SSH_NAME_RE.match(name) or not name.isprintable():
        return (
            f"expected {SSH_FORM}: the {what} {got(name)} holds a space, a quote or one of "
            "$\\;&<>|(){}, which ssh refuses"
        )
    return None


def ssh_url_problem(value: str) -> str | None:
    """Why ``value`` is not ssh://[user@]host[:port][/path/to/docker.sock] (None when it is). The path, when
    given, is the server's Docker socket (DEFAULT_REMOTE_SOCKET otherwise): an absolute, normalised path."""
    if not value.isprintable() or any(c.isspace() for c in value):  # urlsplit would silently drop tabs, newlines
        return f"expected {SSH_FORM}, with no spaces or control characters"
    parts = urlsplit(value)
    try:
        _ = parts.port  # urllib checks the range only when asked
    except ValueError:
        return f"expected {SSH_FORM} with a port from 1 to 65535"
    if parts.scheme != "ssh" or not parts.hostname or parts.query or parts.fragment or parts.password:
        return f"expected {SSH_FORM}, with no query or password"
    path = parts.path
    if path not in ("", "/") and (
        path.endswith("/") or "//" in path or any(p in (".", "..") for p in path.split("/")) or not path.isprintable()
    ):
        return f"expected {SSH_FORM}: the path is the server's Docker socket, such as /run/user/1000/docker.sock"
    return _ssh_name_problem("host", parts.hostname) or (
        _ssh_name_problem("user", parts.username) if parts.username is not None else None
    )


def ssh_socket(value: str) -> str:
    """The server's Docker socket named by a valid ssh:// URL (its path), DEFAULT_REMOTE_SOCKET when none."""
    path = urlsplit(value).path
    return DEFAULT_REMOTE_SOCKET if path in ("", "/") else path
