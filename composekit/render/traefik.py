"""Traefik's static configuration (traefik.yml: entrypoints, ACME resolver, providers) and its dynamic one: the
routes file that composekit writes into the routes volume at every switch (middlewares, TLS options, the app's
router and its servers, and a probe router that says which generation of the file Traefik has loaded), and the
initial routes compose.yaml carries for a fresh routes volume."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from ..config.model import Config
from .names import APP_SERVICE, RESOLVER
from .routes_volume import TRAEFIK_DYNAMIC_DIR

__all__ = [
    "GENERATION_HEADER",
    "INITIAL_GENERATION",
    "SWARM_DYNAMIC_FILE",
    "app_tls",
    "host_rule",
    "initial_routes",
    "routes_file",
    "rule_string",
    "traefik_dynamic",
    "traefik_static",
    "traefik_swarm_static",
]

# A request carrying this header with the generation of the routes file is answered by the probe router of that
# generation only, which adds the same header to the answer: seeing it proves Traefik has loaded that file.
GENERATION_HEADER = "X-Composekit-Generation"


def rule_string(value: str) -> str:
    """A string of a Traefik rule: in backticks (raw, as Traefik's own examples write it), or as a double-quoted Go
    string when the value holds a backtick, which nothing inside backticks can escape."""
    return f"`{value}`" if "`" not in value else json.dumps(value)


def host_rule(domain: str) -> str:
    """Host(`domain`): the rule of the app's router (config/model.py allows no backtick in a domain)."""
    return f"Host({rule_string(domain)})"


def _request_hygiene() -> dict[str, Any]:
    return {"aliasHeadersStrategy": "delete", "encodedCharacters": {"allowEncodedNullCharacter": False}}


def access_log() -> dict[str, Any]:
    """Traefik's access log keeps what the app's own log lacks (gunicorn writes a line for every request it serves):
    every answer that is not a 2xx (a 4xx, a 502/504 while the app is down, a redirect of the app's routes), every
    retried request and every request slower than 1 s, whatever its status. (The HTTP->HTTPS redirect is answered by
    a Traefik-internal router, which Traefik 3 leaves out of the access log unless told otherwise, as before.)
    Logging every request twice cost the proxy a fifth of its throughput on 2 cores (benchmarks/https_hop.py: 0.76x
    against 0.87x of direct HTTP; the log lines passed through the engine's log pipe, dockerd's CPU per request
    tripled)."""
    return {"filters": {"statusCodes": ["100-199", "300-599"], "retryAttempts": True, "minDuration": "1s"}}


def traefik_static(config: Config) -> dict[str, Any]:
    acme: dict[str, Any] = {
        "caServer": config.acme.directory_url,
        "storage": "/acme/acme.json",
    }
    if config.acme.email:
        acme = {"email": config.acme.email, **acme}
    if config.acme.challenge == "http":
        acme["httpChallenge"] = {"entryPoint": "web"}
    else:
        acme["tlsChallenge"] = {}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO", "noColor": True},
        "accessLog": access_log(),
        "ping": {"entryPoint": "ping"},
        # Every entrypoint deletes request headers whose name aliases another (X_Forwarded_For for X-Forwarded-For):
        # a backend that reads them as the header they alias could be fed a forged one. An encoded NUL (%00) in a
        # path is never legitimate and is refused. Traefik 3.6+ warns at every start while neither is set.
        "entryPoints": {
            "web": {
                "address": ":80",
                "http": {
                    "redirections": {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}},
                    **_request_hygiene(),
                },
            },
            "websecure": {
                "address": ":443",
                "http": {"tls": {"certResolver": RESOLVER}, **_request_hygiene()},
            },
            # Only for the container healthcheck; never published.
            "ping": {"address": "127.0.0.1:8082", "http": {"aliasHeadersStrategy": "delete"}},
        },
        "serversTransport": {"forwardingTimeouts": {"idleConnTimeout": "60s"}},
        "providers": {
            # No Docker provider, so nothing needs the Docker socket: the routes come from the file composekit
            # writes (renamed into place, so Traefik never reads half a file) and Traefik applies it at once.
            "providersThrottleDuration": "0s",
            "file": {"directory": TRAEFIK_DYNAMIC_DIR, "watch": True},
        },
        "certificatesResolvers": {RESOLVER: {"acme": acme}},
    }


# In swarm mode the middlewares and TLS options of traefik_dynamic() travel as a Swarm config mounted here.
SWARM_DYNAMIC_FILE = "/etc/traefik/dynamic.yml"


SWARM_DIAL_TIMEOUT = "1s"
# How often Traefik's Swarm provider asks the engine for the services and tasks (render/swarm.py's drain follows it).
SWARM_REFRESH_SECONDS = 5


def traefik_swarm_static(config: Config, endpoint: str, network: str) -> dict[str, Any]:
    """traefik.yml for mode: swarm: the same entrypoints and ACME resolver, but the routes come from the Swarm
    provider (services' deploy.labels, polled through ``endpoint``, the read-only socket proxy; only services
    labelled traefik.enable=true) and the middlewares and TLS options from a file that never changes at runtime."""
    static = traefik_static(config)
    # A task that Swarm just stopped can leave an address that no longer answers at all until Traefik's next poll:
    # a short dial timeout turns that into an error the retry middleware sends to another task.
    static["serversTransport"]["forwardingTimeouts"]["dialTimeout"] = SWARM_DIAL_TIMEOUT
    static["providers"] = {
        "providersThrottleDuration": "0s",
        "swarm": {
            "endpoint": endpoint,
            "exposedByDefault": False,
            "network": network,
            "refreshSeconds": f"{SWARM_REFRESH_SECONDS}s",
            "watch": True,
        },
        "file": {"filename": SWARM_DYNAMIC_FILE, "watch": False},
    }
    return static


def traefik_dynamic() -> dict[str, Any]:
    return {
        "http": {
            "middlewares": {
                "security-headers": {
                    "headers": {
                        "stsSeconds": 31536000,
                        "contentTypeNosniff": True,
                        "frameDeny": True,
                        "referrerPolicy": "strict-origin-when-cross-origin",
                        "customResponseHeaders": {"Server": "", "X-Powered-By": ""},
                    }
                }
            }
        },
        "tls": {"options": {"default": {"minVersion": "VersionTLS12"}}},
    }


def _names_rule(names: list[str]) -> str:
    return " || ".join(host_rule(n) for n in names)


def _redirect_regex(source: str, target: str) -> dict[str, Any]:
    """A permanent redirect of every URL of ``source`` to the same path on ``target`` (the port kept)."""
    return {
        "redirectRegex": {
            "regex": f"^https?://{re.escape(source)}(:[0-9]+)?/(.*)$",
            "replacement": f"https://{target}${{1}}/${{2}}",
            "permanent": True,
        }
    }


def app_tls(config: Config) -> dict[str, Any]:
    """The tls section of the app's routers: the resolver, and (several domains, a www redirect or the shared edge)
    one certificate per listed domain, its www counterpart on it: the app's certificates name its domains only."""
    tls: dict[str, Any] = {"certResolver": RESOLVER}
    redirects = {to: source for source, to in config.www_redirects()}
    if config.extra_domains or redirects or config.edge == "shared":
        tls["domains"] = [{"main": d, **({"sans": [redirects[d]]} if d in redirects else {})} for d in config.domains]
    return tls


def routes_file(
    config: Config, generation: str, live: list[str], probe: list[str], *, retry_after: int | None = None
) -> str:
    """The whole dynamic configuration for one generation: the app's router sends the public traffic to ``live``
    (container names on the `web` network), the probe router sends requests that name ``generation`` to
    ``probe`` (the containers about to go live). Pure: the same arguments give the same bytes.

    ``retry_after`` (seconds): the maintenance routes of a restore: the app's routers keep their domains and
    certificates, and with no server behind them (``live`` and ``probe`` empty) Traefik answers 503, to which a
    middleware adds ``Retry-After``; the probe router still echoes the generation, so the switch to them is observed.

    On the shared edge (edge: shared) the file is one of several in the edge's directory: every name in it starts
    with the app's name (its middlewares too), and the TLS options are the edge's own (render/edge.py)."""
    name = config.name
    host = host_rule(config.domain)
    probe_name = f"{name}-probe"
    shared = config.edge == "shared"
    headers = f"{name}-security-headers" if shared else "security-headers"
    doc = traefik_dynamic()
    if shared:
        doc = {"http": {"middlewares": {headers: doc["http"]["middlewares"]["security-headers"]}}}
    http = doc["http"]
    http["middlewares"][probe_name] = {"headers": {"customResponseHeaders": {GENERATION_HEADER: generation}}}
    http["routers"] = {
        name: {
            "rule": _names_rule(list(config.domains)),
            "entryPoints": ["websecure"],
            "service": name,
            "middlewares": [headers],
            "tls": app_tls(config),
        },
        probe_name: {
            "rule": f"{host} && Header({rule_string(GENERATION_HEADER)}, {rule_string(generation)})",
            "entryPoints": ["websecure"],
            "service": probe_name,
            "middlewares": [headers, probe_name],
            # The same certificates as the app's router: with only the resolver, Traefik would order one for the
            # probe rule's single Host, and serve that one or the app's, whichever it obtained first.
            "tls": app_tls(config),
        },
    }
    if config.extra_domains:
        # Traefik ranks routers by the length of their rule: the app's rule with several Host()s can outgrow the
        # probe's, which then never answers (seen with three domains). The probe router must win for its requests.
        probe_router = http["routers"][probe_name]
        probe_router["priority"] = len(http["routers"][name]["rule"]) + len(probe_router["rule"])
    if retry_after is not None:
        maintenance = f"{name}-maintenance"
        http["middlewares"][maintenance] = {"headers": {"customResponseHeaders": {"Retry-After": str(retry_after)}}}
        for router in (name, probe_name):
            http["routers"][router]["middlewares"].append(maintenance)
    for i, (source, target) in enumerate(config.www_redirects()):
        redirect = f"{name}-www-{i}"
        http["middlewares"][redirect] = _redirect_regex(source, target)
        http["routers"][redirect] = {
            "rule": host_rule(source),
            "entryPoints": ["websecure"],
            "service": name,
            "middlewares": [headers, redirect],
            "tls": app_tls(config),
        }
    http["services"] = {
        service: {"loadBalancer": {"servers": [{"url": f"http://{c}:{config.app.port}"} for c in containers]}}
        for service, containers in ((name, live), (probe_name, probe))
    }
    header = f"# Written by composekit: generation {generation}. Do not edit: `composekit up` rewrites it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


# The generation of the rendered routes (initial_routes); `composekit up` writes random ones.
INITIAL_GENERATION = "initial"


def initial_routes(config: Config) -> str:
    """The routes a stack starts with (compose.yaml carries them, render/routes_volume.py INITIAL_ROUTES): the domain to
    the app's Compose service name, which Docker's DNS resolves to every app container on the `web` network. They
    serve a stack brought up by plain `docker compose up`, until `composekit up` writes its first generation."""
    return routes_file(config, INITIAL_GENERATION, [APP_SERVICE], [APP_SERVICE])
