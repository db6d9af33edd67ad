"""Doctor's checks of the Docker engine: Compose v2, the Traefik image (and in mode: swarm the engine API its Swarm
provider needs), and the engine's own settings for restarts and logs (live-restore, userland-proxy, log rotation).
"""

from __future__ import annotations

import re

from ..engine.settings import SWARM_REFUSAL, EngineSettings
from .checks import CheckResult

__all__ = [
    "check_compose",
    "check_engine_settings",
    "check_traefik_api",
    "check_traefik_image",
    "traefik_version",
]

# Traefik's Swarm provider (its Docker client) asked for API 1.24 until 3.6.1, which negotiates the version; Docker
# Engine 29 refuses clients older than its minimum API version (1.44), so an older Traefik never sees a service.
TRAEFIK_LEGACY_API = (1, 24)
TRAEFIK_NEGOTIATES = (3, 6, 1)
TRAEFIK_V3_FIX = 'composekit renders Traefik v3 configuration: set images/traefik to "traefik:v3.7"'


def _version_tuple(text: str) -> tuple[int, ...]:
    """The first version number in ``text``: "Docker Compose version v2.40.3" -> (2, 40, 3)."""
    match = re.search(r"(?<![\w.])v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def traefik_version(image: str) -> tuple[int, ...]:
    """The Traefik version an image reference names by its tag ("traefik:v3.7" -> (3, 7)); () if it does not."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    return _version_tuple(tag) if name else ()


def _traefik_seen(image: str, present: bool | None) -> tuple[tuple[int, ...], str]:
    version = traefik_version(image)
    shown = ".".join(map(str, version)) if version else "unknown (tag has no version)"
    where = {
        True: "present on this machine",
        False: "not on this machine yet: `composekit up` pulls it",
        None: "presence unknown",
    }[present]
    return version, f"image {image} ({where}), Traefik {shown}"


def check_traefik_image(image: str, present: bool | None) -> CheckResult:
    """Compose mode: Traefik reads its routes from files composekit writes and never calls the engine's API, so
    only the image's major version matters."""
    name = "traefik image"
    version, seen = _traefik_seen(image, present)
    if version and version[0] < 3:
        return CheckResult.fail(name, seen, TRAEFIK_V3_FIX)
    return CheckResult.ok(name, seen)


def check_traefik_api(image: str, api: str, min_api: str, present: bool | None) -> CheckResult:
    """Swarm mode: the engine's API (through composekit's read-only proxy) must serve Traefik's Swarm provider."""
    name = "traefik / engine api"
    version, image_seen = _traefik_seen(image, present)
    seen = f"engine API {api} (minimum {min_api}); {image_seen}"
    engine_min = _version_tuple(min_api)
    if _version_tuple(api) < TRAEFIK_LEGACY_API:
        return CheckResult.fail(
            name, seen, "Traefik v3 needs Docker API 1.24 or newer: upgrade the Docker engine (20.10 or later)"
        )
    if version and version[0] < 3:
        return CheckResult.fail(name, seen, TRAEFIK_V3_FIX)
    if engine_min > TRAEFIK_LEGACY_API:
        # A tag without a patch version ("v3.6") follows that line's latest release.
        if version and version + (999,) * (3 - len(version)) < TRAEFIK_NEGOTIATES:
            return CheckResult.fail(
                name,
                f"{seen}: this Traefik asks for Docker API 1.24, which the engine refuses",
                'use Traefik 3.6.1 or newer (images/traefik: "traefik:v3.7"), which negotiates the API version',
            )
        if not version:
            return CheckResult.warn(
                name,
                f"{seen}: Traefik before 3.6.1 asks for Docker API 1.24, which this engine refuses",
                'pin a versioned tag of 3.6.1 or newer in images/traefik, such as "traefik:v3.7"',
            )
    return CheckResult.ok(name, seen)


def check_compose(version: str) -> CheckResult:
    """`docker compose version` must be v2: composekit drives the Compose v2 CLI plugin."""
    if _version_tuple(version)[:1] >= (2,):
        return CheckResult.ok("compose", version)
    return CheckResult.fail(
        "compose", f"{version}: not v2", "install Compose v2 as a Docker CLI plugin (docker-compose-plugin)"
    )


# engine settings (read by engine/settings.py, judged here) ----------------------------------------

CONFIGURE = "`composekit engine configure`"


def check_engine_settings(s: EngineSettings) -> list[CheckResult]:
    """live-restore, userland-proxy and default log rotation, each with its fix and why."""
    results = []
    name = "engine live-restore"
    if s.swarm:
        results.append(
            CheckResult.ok(
                name,
                f"off, as it must be on a Swarm node (state {s.swarm_state}): {SWARM_REFUSAL}",
            )
            if not s.live_restore
            else CheckResult.warn(
                name,
                f"on, on a Swarm node (state {s.swarm_state}): {SWARM_REFUSAL}",
                'set "live-restore": false in daemon.json on Swarm nodes',
            )
        )
    elif s.live_restore:
        results.append(CheckResult.ok(name, "on: containers keep running while dockerd restarts"))
    else:
        results.append(
            CheckResult.warn(
                name,
                "off: every container stops when dockerd stops (each engine upgrade or restart)",
                f'set "live-restore": true in daemon.json ({CONFIGURE}), then `systemctl reload docker` '
                "(applied without a restart): containers then keep running while dockerd restarts",
            )
        )

    name = "engine userland-proxy"
    if s.userland_proxy is None:
        results.append(
            CheckResult.warn(
                name,
                f"unknown ({s.userland_proxy_source})",
                f"on the server: `ps -C docker-proxy` lists the userland proxies while a port is published; "
                f'{CONFIGURE} there sets "userland-proxy": false',
            )
        )
    elif s.userland_proxy:
        results.append(
            CheckResult.warn(
                name,
                f"on ({s.userland_proxy_source}): published ports go through docker-proxy processes that die "
                "with dockerd, so requests fail during a daemon restart even with live-restore",
                f'set "userland-proxy": false in daemon.json ({CONFIGURE}) and restart dockerd: the kernel forwards '
                "published ports instead; changing it restarts the containers once",
            )
        )
    else:
        results.append(CheckResult.ok(name, f"off ({s.userland_proxy_source}): the kernel forwards published ports"))

    name = "engine log rotation"
    if s.log_driver != "json-file":
        results.append(
            CheckResult.ok(name, f"log-driver {s.log_driver}: rotated or sent off the engine's disk by the driver")
        )
    elif s.log_opts is None:
        results.append(
            CheckResult.warn(
                name,
                f"log-driver json-file, log-opts unknown ({s.log_opts_source})",
                'on the server, "log-opts": {"max-size": "10m", "max-file": "3"} in daemon.json bounds each '
                f"container's log ({CONFIGURE} sets it)",
            )
        )
    elif "max-size" in s.log_opts:
        results.append(
            CheckResult.ok(
                name,
                f"log-driver json-file, max-size {s.log_opts['max-size']}, max-file "
                f"{s.log_opts.get('max-file', '1')} ({s.log_opts_source})",
            )
        )
    else:
        results.append(
            CheckResult.warn(
                name,
                f"log-driver json-file without max-size ({s.log_opts_source}): container logs grow until the "
                "disk is full",
                f'set "log-opts": {{"max-size": "10m", "max-file": "3"}} in daemon.json ({CONFIGURE}) and restart '
                "dockerd: it applies to containers created afterwards",
            )
        )
    return results
