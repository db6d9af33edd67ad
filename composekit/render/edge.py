"""The shared edge (edge: shared): one Traefik per engine in a Compose project of its own, EDGE_PROJECT, routing every
app that opts in. Pure: its compose document, its own dynamic file, the settings every app on it must agree on,
and the check that no two apps claim one domain (engine/edge.py runs it all).

The edge holds a `holder` container that publishes the ports and owns the network namespace (it is the one joined to
each app's `web` network, `docker network connect`), Traefik in that namespace (network_mode service:holder; the ACME
storage in its `acme` volume), and a `routes` container holding its `routes` volume, the directory Traefik's file
provider watches. Each app owns one file there, ``<name>.yml`` (render/traefik.py routes_file with every name prefixed
by the app's), written through that container; the edge's own file, EDGE_FILE, holds the TLS options and the two
slots' drain middlewares.

Upgrading the edge (engine/edge_upgrade.py) starts a second Traefik beside the first in the holder's namespace: both
listen on the same ports (entrypoints with reusePort), each in its own slot (SLOTS: its own ping port and its own
drain middleware on its entrypoints), so the old one can be drained (Connection: close on every answer) and stopped
(its entrypoints' lifeCycle timeouts) while the new one serves."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

from ..config.model import Config
from ..config.project import Project
from .compose import traefik_service
from .routes_volume import ROUTES, ROUTES_DIR, routes_service
from .services import logging_options
from .text import CONFIG_HEADER, acme_ca_files, dump, literal
from .traefik import traefik_static

__all__ = [
    "ACCEPT_GRACE",
    "CREATED_BY_LABEL",
    "DRAIN_GRACE",
    "EDGE_FILE",
    "EDGE_NETWORK",
    "EDGE_PROJECT",
    "HOLDER",
    "REVISION_LABEL",
    "SETTINGS_LABEL",
    "SLOTS",
    "SLOT_LABEL",
    "STEER",
    "STOP_GRACE",
    "claimed_names",
    "domain_conflict",
    "drain_middleware",
    "edge_dynamic",
    "edge_revision",
    "edge_settings",
    "edge_static",
    "new_names",
    "other_slot",
    "render_edge",
    "route_file",
    "settings_mismatch",
]

EDGE_PROJECT = "composekit-edge"
# The edge's own network, where its ports are published; it joins each app's `web` network besides.
EDGE_NETWORK = "edge"
# The edge's own file in the routes directory: app names start with a letter or digit, so no app's file is named so.
EDGE_FILE = "_edge.yml"
SETTINGS_LABEL = "composekit.edge.settings"
CREATED_BY_LABEL = "composekit.edge.created-by"
# Which slot a Traefik of the edge runs in, and the revision of its definition (edge_revision): an upgrade starts the
# new definition in the other slot.
SLOT_LABEL = "composekit.edge.slot"
REVISION_LABEL = "composekit.edge.revision"
HOLDER = "holder"
# Each slot's ping entrypoint (its container healthcheck): two Traefiks share one network namespace during an upgrade.
SLOTS = {"a": 8082, "b": 8083}
# A Traefik that got SIGTERM keeps accepting for ACCEPT_GRACE, then lets in-flight requests finish for DRAIN_GRACE;
# Docker waits STOP_GRACE before SIGKILL.
ACCEPT_GRACE = "1s"
DRAIN_GRACE = "10s"
STOP_GRACE = "20s"

# PID 1 of the holder: nothing but waiting (it owns the network namespace and the published ports); exits on SIGTERM.
HOLD = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\nsignal.pause()\n"

# Run in the holder (`python3 -I -c STEER INDEX`) during an upgrade: which of the Traefiks listening on the public
# ports the kernel hands each new connection to. Both Traefiks' sockets form one SO_REUSEPORT group, in the order
# they started listening; a classic BPF program attached to the group returns the index of the socket that takes
# every new connection (0: the older Traefik, so a new one starting is not handed any before it is ready; 1: the new
# one, before the old one stops). Attaching needs a socket in the group (same family, same uid as Traefik's, which
# is why the holder runs as root, with no capability): this one joins last (no index moves), attaches, and leaves; a
# connection handed to it meanwhile moves on to the Traefiks when it closes (tcp_migrate_req). Classic BPF on a
# socket needs no privilege.
STEER = (
    "import ctypes, socket, struct, sys\n"
    "index = int(sys.argv[1])\n"
    "code = (ctypes.c_ubyte * 8).from_buffer_copy(struct.pack('=HBBI', 0x06, 0, 0, index))\n"  # BPF_RET|BPF_K index
    "fprog = struct.pack('@HP', 1, ctypes.addressof(code))\n"
    "SO_ATTACH_REUSEPORT_CBPF = 51\n"
    "def listening(table, port):\n"
    "    try:\n"
    "        rows = open(table).read().splitlines()[1:]\n"
    "    except OSError:\n"
    "        return False\n"
    "    return any(r.split()[1].endswith(':%04X' % port) and r.split()[3] == '0A' for r in rows)\n"
    "for port in (80, 443):\n"
    "    if listening('/proc/net/tcp6', port):\n"  # Go's wildcard listener: IPv6, dual-stack
    "        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
    "        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
    "        address = ('::', port)\n"
    "    elif listening('/proc/net/tcp', port):\n"
    "        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "        address = ('0.0.0.0', port)\n"
    "    else:\n"
    "        sys.exit('nothing listens on port %d' % port)\n"
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
    "    s.bind(address)\n"
    "    s.listen(64)\n"
    "    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)\n"
    "    s.close()\n"
    "print('new connections go to listener', index)\n"
)


def other_slot(slot: str) -> str:
    return "b" if slot == "a" else "a"


def drain_middleware(slot: str) -> str:
    """The middleware on the entrypoints of the Traefik in ``slot``, defined in EDGE_FILE: app names start with a
    letter or digit, so no app's (prefixed) middleware is named so."""
    return f"_drain-{slot}"


def route_file(config: Config) -> str:
    """The path of the app's routes file in the edge's routes volume (as its routes container mounts it)."""
    return f"{ROUTES_DIR}/{config.name}.yml"


def edge_settings(project: Project) -> dict[str, str]:
    """What every app on one edge must agree on, by key path: the edge's ports, ACME resolver and image."""
    config = project.config
    cas = acme_ca_files(project)
    digest = hashlib.sha256("\0".join(cas[k] for k in sorted(cas)).encode()).hexdigest()[:16]
    return {
        "ports/http": str(config.ports.http),
        "ports/https": str(config.ports.https),
        "acme/ca_server": config.acme.directory_url,
        "acme/email": config.acme.email or "(none)",
        "acme/challenge": config.acme.challenge,
        "acme/ca_certificates": f"sha256 {digest} of {len(cas)} file(s)" if cas else "(none)",
        "images/traefik": config.images.traefik,
    }


def settings_mismatch(app: str, mine: dict[str, str], edge: dict[str, str], created_by: str) -> str | None:
    """Why ``app`` (settings ``mine``) cannot use the running edge (settings ``edge``, created by ``created_by``), or
    None when they agree: every differing key, both values, and the fix."""
    keys = [k for k in mine if mine[k] != edge.get(k, "(unknown)")]
    if not keys:
        return None
    said = "; ".join(f"{k} is {mine[k]!r} here but {edge.get(k, '(unknown)')!r} on the edge" for k in keys)
    return (
        f"edge: shared: app {app} cannot use the running shared edge ({EDGE_PROJECT}, created by app {created_by}): "
        f"{said}. Every app on one edge must agree on ports/http, ports/https, acme/ca_server, acme/email, "
        "acme/challenge, acme/ca_certificates and images/traefik. Fix: set the edge's values in this app's "
        "composekit.yaml, or upgrade the edge to this app's values with `composekit edge up` (no request is lost; "
        "ports excepted; every other app must then agree), or recreate it (`composekit edge down` once no app uses "
        "it, then `composekit up`). Nothing was changed."
    )


def edge_dynamic(draining: str | None = None) -> str:
    """The edge's own dynamic file: the TLS options every app's routers use (no app's file may define them) and each
    slot's drain middleware. Both are always defined (a router whose entrypoint names a missing middleware is
    dropped); the one of slot ``draining`` closes each connection after its answer, so that keep-alive clients move
    to the other Traefik before this one stops, and a harmless one otherwise."""
    middlewares: dict[str, Any] = {}
    for slot in SLOTS:
        header = {"Connection": "close"} if slot == draining else {"X-Composekit-Edge-Drain": ""}
        middlewares[drain_middleware(slot)] = {"headers": {"customResponseHeaders": header}}
    doc = {"http": {"middlewares": middlewares}, "tls": {"options": {"default": {"minVersion": "VersionTLS12"}}}}
    return "# Written by composekit: the shared edge's TLS options and drain middlewares.\n" + yaml.safe_dump(
        doc, sort_keys=False
    )


def edge_static(config: Config, slot: str) -> dict[str, Any]:
    """traefik.yml of the edge's Traefik in ``slot``: the stack's static configuration, with the public entrypoints
    shared with another Traefik in the same namespace (reusePort), draining on SIGTERM (lifeCycle), behind the
    slot's drain middleware, and the ping entrypoint on the slot's own port."""
    static = traefik_static(config)
    for name in ("web", "websecure"):
        entry = static["entryPoints"][name]
        entry["reusePort"] = True
        entry["transport"] = {"lifeCycle": {"requestAcceptGraceTimeout": ACCEPT_GRACE, "graceTimeOut": DRAIN_GRACE}}
        entry["http"]["middlewares"] = [f"{drain_middleware(slot)}@file"]
    static["entryPoints"]["ping"]["address"] = f"127.0.0.1:{SLOTS[slot]}"
    return static


def _contents(project: Project, slot: str) -> dict[str, str]:
    contents = {"traefik.yml": CONFIG_HEADER + dump(edge_static(project.config, slot))}
    contents.update(acme_ca_files(project))
    return contents


def _traefik_definition(project: Project) -> dict[str, Any]:
    """The edge's Traefik without its labels: in the holder's network namespace, so no ports or networks of its
    own; a stop timeout longer than its entrypoints' lifeCycle."""
    service = traefik_service(project.config, {}, [EDGE_NETWORK])
    for key in ("ports", "networks", "extra_hosts", "labels"):
        service.pop(key, None)
    service["network_mode"] = f"service:{HOLDER}"
    service["stop_grace_period"] = STOP_GRACE
    return service


def edge_revision(project: Project) -> str:
    """What an edge's Traefik is, as a digest: its definition and files (the static one of slot a). A running
    Traefik whose revision label differs is upgraded (engine/edge_upgrade.py)."""
    service = _traefik_definition(project)
    service.pop("logging")  # each app's own setting: apps differing in it would upgrade the edge in turn
    doc = {"service": service, "files": _contents(project, "a")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _traefik(project: Project, slot: str) -> dict[str, Any]:
    """The edge's Traefik in ``slot``: labelled with the settings every app on it must share, the app that created
    it, its slot and its revision."""
    config = project.config
    service = _traefik_definition(project)
    service["labels"] = {
        SETTINGS_LABEL: json.dumps(edge_settings(project), sort_keys=True),
        CREATED_BY_LABEL: config.name,
        SLOT_LABEL: slot,
        REVISION_LABEL: edge_revision(project),
    }
    return service


def _holder(project: Project, migrate_req: bool) -> dict[str, Any]:
    """Owns the edge's network namespace: publishes the ports and joins the networks (the edge's, each app's `web`);
    every Traefik of the edge runs in it. It runs nothing but a wait, so no upgrade of Traefik touches it: no
    capability, a read-only root, no Docker socket; root (uid 0, Traefik's) only so that STEER, run in it, may join
    Traefik's listening sockets. tcp_migrate_req: a connection queued on a listener that closes (a stopping Traefik,
    STEER's) moves to another one of the group instead of being reset."""
    config = project.config
    service: dict[str, Any] = {
        "image": config.images.python,
        "command": ["python3", "-I", "-c", HOLD],
        "restart": "always",
        "user": "0:0",
        "ports": [f"{config.ports.http}:80", f"{config.ports.https}:443"],
        "networks": [EDGE_NETWORK],
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": 8,
        "logging": logging_options(config),
    }
    if migrate_req:  # Linux 5.14+; Docker refuses a sysctl the kernel lacks
        service["sysctls"] = {"net.ipv4.tcp_migrate_req": "1"}
    if "://host.docker.internal" in config.acme.directory_url:
        service["extra_hosts"] = ["host.docker.internal:host-gateway"]  # Traefik shares the holder's /etc/hosts
    return service


def _routes(config: Config) -> dict[str, Any]:
    """Holds the edge's routes volume read-write (as an app's routes container holds its own): starts it with the
    edge's own file; each app's `up` writes its file through it."""
    return routes_service(config, EDGE_FILE, edge_dynamic())


def render_edge(project: Project, slot: str = "a", migrate_req: bool = True) -> str:
    """The edge's compose file, for the settings of ``project`` (the app whose `up` creates it, or `edge up`), its
    Traefik in ``slot``; ``migrate_req``: the engine's kernel has net.ipv4.tcp_migrate_req (Linux 5.14+)."""
    contents = _contents(project, slot)
    doc: dict[str, Any] = {
        "name": EDGE_PROJECT,
        "services": {
            HOLDER: _holder(project, migrate_req),
            "traefik": _traefik(project, slot),
            ROUTES: _routes(project.config),
        },
        "networks": {EDGE_NETWORK: {}},
        "volumes": {"acme": {}, ROUTES: {}},
        "configs": {name: {"content": contents[name]} for name in contents},
    }
    return CONFIG_HEADER + dump(literal(doc))


_HOST = re.compile(r"Host\(\s*`([^`]+)`\s*\)")


def claimed_names(text: str) -> set[str]:
    """The names an app's routes file routes: its routers' Host rules and certificate domains."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return set()
    routers = (doc or {}).get("http", {}).get("routers", {}) if isinstance(doc, dict) else {}
    names: set[str] = set()
    for router in routers.values() if isinstance(routers, dict) else ():
        if not isinstance(router, dict):
            continue
        names.update(_HOST.findall(str(router.get("rule", ""))))
        for d in (router.get("tls") or {}).get("domains", []) or []:
            names.update([str(d.get("main", "")), *map(str, d.get("sans", []) or [])])
    names.discard("")
    return names


def new_names(text: str, current: str | None) -> set[str]:
    """The names the routes file ``text`` routes that the app's file on the edge now (``current``; None: it has none)
    does not: writing ``text`` claims them (engine/edge.py write_route checks and writes it under the edge lock)."""
    return claimed_names(text) - claimed_names(current or "")


def domain_conflict(config: Config, others: dict[str, str]) -> str | None:
    """Why ``config``'s app cannot take its domains on the edge, or None: ``others`` are the other apps' routes files
    (app name -> text); a name this app serves or redirects that another app routes is refused, naming both."""
    mine = [*config.domains, *(source for source, _ in config.www_redirects())]
    for app in sorted(others):
        if app == config.name:
            continue
        taken = claimed_names(others[app])
        for name in mine:
            if name in taken:
                return (
                    f"domain: {name} is routed by app {app} on the shared edge, so app {config.name} cannot claim it. "
                    f"Fix: remove {name} from this app's domain (or www), or take it off app {app} first "
                    f"(`composekit down` of {app}, or its own domain changed and `composekit up`). Nothing was changed."
                )
    return None
