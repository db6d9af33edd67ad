"""The shared edge (edge: shared): one Traefik per engine in a Compose project of its own, EDGE_PROJECT, routing every
app that opts in. Pure: its compose document, its own dynamic file, the settings every app on it must agree on,
and the check that no two apps claim one domain (engine/edge.py runs it all).

The edge holds Traefik (ports, the ACME storage in its `acme` volume) and a `routes` container holding its `routes`
volume, the directory Traefik's file provider watches. Each app owns one file there, ``<name>.yml``
(render/traefik.py routes_file with every name prefixed by the app's), written through that container; the edge's
own file, EDGE_FILE, holds the TLS options. Traefik joins each app's `web` network (`docker network connect`)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

from ..config.model import Config
from ..config.project import Project
from .compose import ROUTES, ROUTES_DIR, routes_service, traefik_service
from .text import CONFIG_HEADER, acme_ca_files, dump, literal
from .traefik import traefik_static

__all__ = [
    "CREATED_BY_LABEL",
    "EDGE_FILE",
    "EDGE_NETWORK",
    "EDGE_PROJECT",
    "SETTINGS_LABEL",
    "claimed_names",
    "domain_conflict",
    "edge_dynamic",
    "edge_settings",
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
        "composekit.yaml, or recreate the edge with this app's values (`composekit edge down` once no app uses it, "
        "then `composekit up`). Nothing was changed."
    )


def edge_dynamic() -> str:
    """The edge's own dynamic file: the TLS options every app's routers use (no app's file may define them)."""
    doc = {"tls": {"options": {"default": {"minVersion": "VersionTLS12"}}}}
    return "# Written by composekit: the shared edge's TLS options.\n" + yaml.safe_dump(doc, sort_keys=False)


def _traefik(project: Project, contents: dict[str, str]) -> dict[str, Any]:
    """The edge's Traefik: labelled with the settings every app on it must share and the app that created it."""
    config = project.config
    labels = {SETTINGS_LABEL: json.dumps(edge_settings(project), sort_keys=True), CREATED_BY_LABEL: config.name}
    return traefik_service(config, labels, [EDGE_NETWORK])


def _routes(config: Config) -> dict[str, Any]:
    """Holds the edge's routes volume read-write (as an app's routes container holds its own): starts it with the
    edge's own file; each app's `up` writes its file through it."""
    return routes_service(config, EDGE_FILE, edge_dynamic())


def render_edge(project: Project) -> str:
    """The edge's compose file, for the settings of ``project`` (the app whose `up` creates it)."""
    contents = {"traefik.yml": CONFIG_HEADER + dump(traefik_static(project.config))}
    contents.update(acme_ca_files(project))
    doc: dict[str, Any] = {
        "name": EDGE_PROJECT,
        "services": {"traefik": _traefik(project, contents), ROUTES: _routes(project.config)},
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
