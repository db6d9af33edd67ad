"""Traefik's static configuration (traefik.yml: entrypoints, ACME resolver, providers) and its dynamic one
(traefik-dynamic.yml: middlewares and TLS options, loaded by the file provider)."""

from __future__ import annotations

from typing import Any

from ..config.model import Config
from .compose import RESOLVER, SOCKET_PROXY, SOCKET_PROXY_PORT

__all__ = ["traefik_dynamic", "traefik_static"]


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
        "accessLog": {},
        "ping": {"entryPoint": "ping"},
        "entryPoints": {
            "web": {
                "address": ":80",
                "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}},
            },
            "websecure": {
                "address": ":443",
                "http": {"tls": {"certResolver": RESOLVER}},
            },
            # Only for the container healthcheck; never published.
            "ping": {"address": "127.0.0.1:8082"},
        },
        "serversTransport": {"forwardingTimeouts": {"idleConnTimeout": "60s"}},
        "providers": {
            "docker": {
                # The filtering socket proxy: Traefik never holds the Docker socket itself.
                "endpoint": f"tcp://{SOCKET_PROXY}:{SOCKET_PROXY_PORT}",
                "exposedByDefault": False,
                "network": f"{config.name}_web",
                "constraints": f"Label(`com.docker.compose.project`,`{config.name}`)",
            },
            "file": {"directory": "/etc/traefik/dynamic", "watch": False},
        },
        "certificatesResolvers": {RESOLVER: {"acme": acme}},
    }


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
