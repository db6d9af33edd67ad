"""How composekit reaches a Docker engine over SSH: ONE connection for the whole command.

The Docker CLI's own ssh:// support starts a new SSH connection for every CLI call (`ssh HOST docker system
dial-stdio`), and one `up` makes dozens of them. Instead, `ssh -N -L` forwards a private local socket to the
server's Docker socket while the command runs; every Docker and Compose call goes through that one connection.
Keys only (BatchMode), and the host key is always checked (StrictHostKeyChecking=yes, whatever the user's SSH
config says): an unknown or changed host key is an error with the fix, never a silent accept.

When the server cannot be reached from here directly (its name does not resolve here, or ssh reaches it through a
ProxyJump or ProxyCommand), the probes of a deploy go through a second connection of the same kind, which forwards
private local sockets to the ports the server publishes on its own 127.0.0.1 (Traefik's).

This is the one module that runs ssh.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from ..config.ssh_url import DEFAULT_REMOTE_SOCKET, ssh_socket, ssh_url_problem
from ..errors import SshError

__all__ = [
    "REMOTE_SOCKET",
    "SSH_CONFIG_ENV",
    "SshDestination",
    "SshTunnel",
    "parse_ssh_url",
    "proxied",
    "ssh_failure",
    "ssh_settings",
]

REMOTE_SOCKET = DEFAULT_REMOTE_SOCKET
SSH_CONFIG_ENV = "COMPOSEKIT_SSH_CONFIG"  # an ssh config file to use instead of ~/.ssh/config (CI, tests)
CONNECT_TIMEOUT = 15


@dataclass(frozen=True)
class SshDestination:
    """ssh://[user@]host[:port][/path/to/docker.sock]; ``host`` may be an alias of the SSH config, ``socket`` is
    the server's Docker socket (the URL's path; /var/run/docker.sock when it has none)."""

    url: str
    host: str
    user: str | None = None
    port: int | None = None
    config_file: str | None = None
    socket: str = REMOTE_SOCKET

    def options(self) -> list[str]:
        """ssh's options for this destination (the destination itself last)."""
        argv = ["-F", self.config_file] if self.config_file else []
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return argv

    def command(self) -> str:
        """The plain ssh command a user runs to reach the same server (for messages), quoted for a shell."""
        return shlex.join(["ssh", *self.options(), self.host])


def parse_ssh_url(url: str, environ: Mapping[str, str] = os.environ) -> SshDestination:
    """ssh://[user@]host[:port][/path/to/docker.sock] -> SshDestination; ValueError with the reason when it is
    not one."""
    problem = ssh_url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    parts = urlsplit(url)
    return SshDestination(
        url,
        str(parts.hostname),
        parts.username or None,
        parts.port,
        environ.get(SSH_CONFIG_ENV) or None,
        ssh_socket(url),
    )


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, encoding="utf-8", errors="replace", timeout=CONNECT_TIMEOUT, check=False
    )


def ssh_settings(dest: SshDestination, run: Runner = _run) -> dict[str, str]:
    """What ssh will do for ``dest`` once its config is applied (`ssh -G`): hostname, port, user, ..."""
    try:
        done = run(["ssh", *dest.options(), "-G", "--", dest.host])
    except FileNotFoundError:
        raise SshError(f"{dest.url}: ssh is not installed here: install the OpenSSH client (openssh-client)") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SshError(f"{dest.url}: ssh cannot read its configuration for {dest.host}: {said}")
    settings: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), value.strip())
    return settings


def _host_port(settings: Mapping[str, str]) -> str:
    host, port = settings.get("hostname", "?"), settings.get("port", "22")
    return host if port == "22" else f"[{host}]:{port}"


def ssh_failure(dest: SshDestination, settings: Mapping[str, str], log: str) -> str:
    """ssh's output when it could not connect -> one line: what went wrong and the fix."""
    hp = _host_port(settings)
    known = (settings.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
    user = settings.get("user", "?")
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in log or "has changed and you have requested strict checking" in log:
        return (
            f"{dest.url}: the SSH host key of {hp} has CHANGED since it was recorded in {known}, so composekit did "
            f"not connect (someone may be intercepting the connection, or the server was reinstalled); only if you "
            f"know the server's key changed, remove the old one with `ssh-keygen -f {known} -R '{hp}'`, then check "
            f"the new fingerprint and accept it with `{dest.command()}`"
        )
    if "host key is known for" in log or "Host key verification failed" in log:
        return (
            f"{dest.url}: the SSH host key of {hp} is unknown (not in {known}) and composekit never accepts one "
            f"silently; run `{dest.command()}` once, check that the fingerprint it shows is the server's "
            f"(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server) and answer yes"
        )
    if "Permission denied" in log:
        return (
            f"{dest.url}: the server {hp} refused the SSH key for user {user} ({last}); add your public key to "
            f"~{user}/.ssh/authorized_keys on the server, or name the right key with IdentityFile for this host in "
            f"your SSH config (composekit logs in with keys only, never a password)"
        )
    return f"{dest.url}: cannot connect over SSH to {hp}: {last}; check the address, the port and that sshd runs there"


def proxied(settings: Mapping[str, str]) -> str | None:
    """How ssh reaches the server when not directly (`ssh -G`'s proxyjump or proxycommand), or None."""
    for key, name in (("proxyjump", "ProxyJump"), ("proxycommand", "ProxyCommand")):
        value = settings.get(key, "none")
        if value and value.lower() != "none":
            return f"{name} {value}"
    return None


class SshTunnel:
    """`ssh -N -L LOCAL_SOCKET:SERVER_SOCKET` (the destination's Docker socket) for as long as the `with` block
    runs; with ``ports``, instead one local socket per port, forwarded to that port on the server's 127.0.0.1."""

    def __init__(
        self,
        dest: SshDestination,
        settings: Mapping[str, str],
        timeout: float = CONNECT_TIMEOUT,
        ports: tuple[int, ...] = (),
    ) -> None:
        self.dest = dest
        self.settings = dict(settings)
        self.timeout = timeout
        self.remote_socket = dest.socket
        self.ports = ports
        self._dir = ""
        self.socket = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def engine_url(self) -> str:
        return f"unix://{self.socket}"

    def port_socket(self, port: int) -> str | None:
        """The local socket forwarded to ``port`` on the server's 127.0.0.1 (None when ``port`` is not forwarded)."""
        return os.path.join(self._dir, f"port-{port}.sock") if port in self.ports and self._dir else None

    def _forwards(self) -> list[str]:
        if not self.ports:
            return ["-L", f"{self.socket}:{self.remote_socket}"]
        return [arg for port in self.ports for arg in ("-L", f"{self.port_socket(port)}:127.0.0.1:{port}")]

    def argv(self) -> list[str]:
        return [
            "ssh",
            *self.dest.options(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"ConnectTimeout={int(self.timeout)}",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "ControlPath=none",
            "-N",
            "-T",
            *self._forwards(),
            "--",  # the destination is never read as an option, whatever it holds (parse_ssh_url refuses "-...")
            self.dest.host,
        ]

    def log(self) -> str:
        try:
            with open(os.path.join(self._dir, "ssh.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def lost(self) -> str | None:
        """Why the connection is gone ("ssh exited: ..."), or None while it holds."""
        if self.process is None or self.alive():
            return None
        lines = [line for line in self.log().splitlines() if line.strip()]
        said = lines[-1].strip() if lines else f"exit status {self.process.returncode}"
        return f"the SSH connection to {self.dest.url} was lost (ssh: {said})"

    def socket_refused(self) -> str | None:
        """Why the server did not open its Docker socket for a forwarded connection (and what to do), or None.

        sshd says no more than "open failed" whatever the reason: no such socket, or a user not allowed to use it."""
        refused = [line.strip() for line in self.log().splitlines() if "open failed" in line]
        if not refused or self.ports:
            return None
        user = self.settings.get("user") or self.dest.user or "the SSH user"
        allowed = (
            ""
            if user == "root"
            else f" and that {user} may use it (a member of the group docker: `usermod -aG docker {user}`)"
        )
        return (
            f"the SSH connection to {self.dest.url} works, but the server did not open its Docker socket "
            f"{self.remote_socket} (ssh: {refused[-1]}); check on the server that Docker runs and listens there "
            f"(`ls -l {self.remote_socket}`){allowed}; for rootless Docker, put its socket after the host, as in "
            "ssh://deploy@vps/run/user/1000/docker.sock"
        )

    def forwarding_refused(self) -> str | None:
        """Why the server refuses this tunnel's port forwards (and the fix), or None. Only "administratively
        prohibited" counts: a refused connection just means nothing listens there yet (Traefik starting)."""
        refused = [line.strip() for line in self.log().splitlines() if "administratively prohibited" in line]
        if not self.ports or not refused:
            return None
        user = self.settings.get("user") or self.dest.user or "the SSH user"
        return (
            f"the server {_host_port(self.settings)} refuses to forward TCP ports over SSH (ssh: {refused[-1]}), and "
            f"composekit probes the stack through such a forward because the server is not reachable from here; allow "
            f"it for {user} in the server's sshd_config (AllowTcpForwarding local) and reload sshd"
        )

    def open(self) -> SshTunnel:
        self._dir = tempfile.mkdtemp(prefix="composekit-ssh-")  # 0700: only this user reaches the socket
        self.socket = os.path.join(self._dir, "docker.sock")
        listening = [str(self.port_socket(port)) for port in self.ports] or [self.socket]
        with open(os.path.join(self._dir, "ssh.log"), "wb") as log:
            try:
                self.process = subprocess.Popen(
                    self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
                )
            except FileNotFoundError:
                self.close()
                raise SshError(f"{self.dest.url}: ssh is not installed here: install the OpenSSH client") from None
        end = time.monotonic() + self.timeout + 5
        while time.monotonic() < end:
            if self.process.poll() is not None:
                message = ssh_failure(self.dest, self.settings, self.log())
                self.close()
                raise SshError(message)
            if all(os.path.exists(path) for path in listening):
                return self
            time.sleep(0.02)
        self.close()
        raise SshError(
            f"{self.dest.url}: ssh did not set up its connection within {self.timeout + 5:g}s; "
            f"check that `{self.dest.command()} true` answers"
        )

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> SshTunnel:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
