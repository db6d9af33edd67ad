"""Which Docker engine a command drives, and where its server is reached.

In order: `--host`, `host:` in the config, DOCKER_HOST, the current Docker context (DOCKER_CONTEXT or the
CLI's own choice). A value is ssh://[user@]host[:port][/path/to/docker.sock] (an SSH config alias works as host;
the path is the server's Docker socket, /var/run/docker.sock by default), unix:///path,
tcp://host:port, or the name of a Docker context (resolved to its endpoint).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config.fields import got
from ..config.ssh_url import HOST_FORMS, host_problem, ssh_url_problem
from ..errors import UserError
from .ssh import SshDestination, SshTunnel, parse_ssh_url, proxied, ssh_settings

__all__ = [
    "HOST_FORMS",
    "LOCAL_ADDRESS",
    "Engine",
    "Target",
    "checked",
    "choose_target",
    "connect",
    "host_problem",
    "not_reachable",
    "resolve_address",
    "server_address",
    "server_ip",
    "target_address",
]

LOCAL_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class Target:
    """The engine of one command: its URL, and why it was chosen (named in status and every error)."""

    url: str  # ssh://..., unix://..., tcp://...; "" for the Docker CLI's own choice
    source: str  # --host | <config file>: host | DOCKER_HOST | docker context "NAME"
    context: str | None = None  # the Docker context it came from, if any

    @property
    def is_ssh(self) -> bool:
        return self.url.startswith("ssh://")

    @property
    def is_local(self) -> bool:
        return self.url.startswith("unix://") or self.url.startswith("npipe://")

    def describe(self) -> str:
        return f"{self.url} (from {self.source})" if self.url else self.source


def choose_target(
    option: str | None,
    config_host: str | None,
    config_source: str,
    environ: Mapping[str, str],
    context_endpoint: Callable[[str | None], tuple[str, str]],
) -> Target:
    """The engine for this command. ``context_endpoint(name)`` returns (context name, its engine URL); with
    None it answers for the current context."""
    for value, source in (
        (option, "--host"),
        (config_host, f"{config_source}: host"),
        (environ.get("DOCKER_HOST") or None, "DOCKER_HOST"),
    ):
        if value:
            if "://" in value:
                return checked(Target(value, source))
            name, url = context_endpoint(value)
            return checked(Target(url, f'{source} (docker context "{name}")', name))
    name, url = context_endpoint(environ.get("DOCKER_CONTEXT") or None)
    return checked(Target(url, f'docker context "{name}"', name))


def checked(target: Target) -> Target:
    """``target`` when composekit can drive it; a UserError naming where it came from when it is an ssh:// URL
    ssh could misread (DOCKER_HOST and Docker contexts reach here unvalidated; --host and host: were validated
    with the config)."""
    problem = ssh_url_problem(target.url) if target.is_ssh else None
    if problem is not None:
        raise UserError(f"{target.source}: {problem}, got {got(target.url)}")
    return target


def _destination(target: Target, environ: Mapping[str, str]) -> SshDestination:
    try:
        return parse_ssh_url(target.url, environ)
    except ValueError as exc:
        raise UserError(f"{target.source}: {exc}, got {got(target.url)}") from None


def resolve_address(host: str, lookup: Callable[[str], str] = socket.gethostbyname) -> str:
    """An IP literal as is, a name through the resolver (IPv4, as Traefik's ports are published)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return lookup(host)


@dataclass(frozen=True)
class Engine:
    """A target engine, connected: what the Docker module hands the CLI (host or context), where the server is
    reached (``address``: the probes, DNS and smoke checks use it), and the SSH tunnel when there is one.

    ``unreachable`` says why ``address`` cannot be used from here (a name that does not resolve here, a server
    ssh reaches through a proxy); the probes then go through ``probes``, a second SSH connection that forwards
    the server's published ports (connect() opens it when it is given the ports)."""

    target: Target
    host: str | None = None
    context: str | None = None
    address: str = LOCAL_ADDRESS
    tunnel: SshTunnel | None = None
    unreachable: str | None = None
    probes: SshTunnel | None = None

    @classmethod
    def default(cls) -> Engine:
        return cls(Target("", "the Docker CLI's default engine"))

    @property
    def is_remote(self) -> bool:
        return not (self.target.url == "" or self.target.is_local)

    def describe(self) -> str:
        via = f", through one SSH connection (ssh pid {self.tunnel.pid})" if self.tunnel is not None else ""
        if self.probes is not None:
            via += f"; probes through a second one (ssh pid {self.probes.pid}: {self.unreachable})"
        return self.target.describe() + via

    def probe_trouble(self) -> str | None:
        """Why the probes' SSH connection cannot carry them (lost, or the server refuses its forwards), or None."""
        if self.probes is None:
            return None
        return self.probes.lost() or self.probes.forwarding_refused()

    def probe_socket(self, port: int) -> str | None:
        """The local socket forwarded to ``port`` on the server's 127.0.0.1, when the probes go through SSH."""
        return self.probes.port_socket(port) if self.probes is not None else None

    def lost(self) -> str | None:
        """Why the engine became unreachable mid-command (the SSH connection died), or None."""
        return self.tunnel.lost() if self.tunnel is not None else None

    def socket_refused(self) -> str | None:
        """Why the server's Docker socket refused the SSH connection's forwarding (with the fix), or None."""
        return self.tunnel.socket_refused() if self.tunnel is not None else None


def server_ip(engine: Engine) -> str:
    """The server's IP address, for `--resolve server`: smoke checks the server from here, as a visitor would."""
    if engine.unreachable is not None:
        raise _no_server_ip(engine.unreachable, "or --no-smoke")
    return engine.address


def _no_server_ip(why: str, other: str = "") -> UserError:
    return UserError(
        f"--resolve server: {why}, so smoke cannot check the server from here as a visitor would; pass "
        f"--resolve DOMAIN:PUBLIC_IP (the server's public address){', ' + other if other else ''}"
    )


def server_address(engine: Engine | None) -> str:
    """Where the server of ``engine`` is reached from here: the one answer for every probe, smoke and DNS
    check (the wait-until-routed probe included). 127.0.0.1 for a local engine."""
    return engine.address if engine is not None else LOCAL_ADDRESS


def target_address(target: Target, environ: Mapping[str, str] = os.environ) -> str:
    """Where ``target``'s server is reached (for `--resolve server`), without connecting: `ssh -G` says which host
    an ssh:// URL (or alias) reaches; a unix socket is this machine. A UserError when this machine cannot reach it
    (not_reachable)."""
    settings: dict[str, str] = {}
    if target.is_ssh:
        dest = _destination(target, environ)
        settings = ssh_settings(dest)
        host = settings.get("hostname", dest.host)
    elif target.url and not target.is_local:
        host = urlsplit(target.url).hostname or ""
    else:
        return LOCAL_ADDRESS
    why = not_reachable(host, settings)
    if why is not None:
        raise _no_server_ip(why)
    return _address_of(host)


def _address_of(host: str, lookup: Callable[[str], str] = socket.gethostbyname) -> str:
    try:
        return resolve_address(host, lookup)
    except (OSError, UnicodeError):
        return host  # unresolvable from here: not_reachable() says so, and connect() probes through SSH


def not_reachable(
    host: str, settings: Mapping[str, str] | None = None, lookup: Callable[[str], str] = socket.gethostbyname
) -> str | None:
    """Why the server ``host`` (its name as ssh or the URL has it) cannot be probed from here at its address, or
    None: its name does not resolve here, or ssh reaches it only through a proxy (``settings``: `ssh -G`'s)."""
    via = proxied(settings or {})
    if via is not None:
        return f"ssh reaches {host} through {via}"
    if _address_of(host, lookup) == host:
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return f"the name {host} does not resolve on this machine"
    return None


@contextmanager
def connect(target: Target, environ: Mapping[str, str] = os.environ, ports: tuple[int, ...] = ()) -> Iterator[Engine]:
    """The engine of ``target`` for the duration of one command; an ssh:// target holds one SSH connection
    (a tunnel to the server's Docker socket) until the block ends. A UserError raised inside is tagged with
    the engine, so every error names it.

    ``ports``: the ports the server publishes (Traefik's), when the command probes them. Should the server not be
    reachable from here (not_reachable), a second SSH connection forwards them, and the probes go through it."""
    if target.is_ssh:
        dest = _destination(target, environ)
        settings = ssh_settings(dest)
        hostname = settings.get("hostname", dest.host)
        unreachable = not_reachable(hostname, settings)
        with SshTunnel(dest, settings) as tunnel:
            engine = Engine(
                target, host=tunnel.engine_url, address=_address_of(hostname), tunnel=tunnel, unreachable=unreachable
            )
            with _naming(engine):
                if unreachable is None or not ports:
                    yield engine
                    return
                with SshTunnel(dest, settings, ports=ports) as probes:
                    engine = Engine(
                        target, engine.host, None, engine.address, tunnel, unreachable=unreachable, probes=probes
                    )
                    with _naming(engine):
                        yield engine
        return
    if target.context is not None:
        engine = Engine(target, context=target.context)
    else:
        engine = Engine(target, host=target.url or None)
    if not target.is_local and target.url:
        host = urlsplit(target.url).hostname or ""
        engine = Engine(engine.target, engine.host, engine.context, _address_of(host), unreachable=not_reachable(host))
    with _naming(engine):
        yield engine


@contextmanager
def _naming(engine: Engine) -> Iterator[None]:
    try:
        yield
    except UserError as exc:
        if exc.engine is None:
            exc.engine = engine.describe()
        raise
