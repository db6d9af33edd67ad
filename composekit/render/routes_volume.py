"""The routes volume, where Traefik's routes live in both layouts (a stack's own Traefik in compose mode, the shared
edge: render/edge.py): its name, where it is mounted, the routes file, and the container that holds it read-write
(routes_service). Pure. Nothing in the stack mounts the Docker socket: Traefik learns its routes from the files
written here (engine/routes_volume.py, engine/edge.py)."""

from __future__ import annotations

from typing import Any

from ..config.model import Config
from .services import logging_options

__all__ = [
    "INITIAL_ROUTES",
    "ROUTES",
    "ROUTES_DIR",
    "ROUTES_FILE",
    "ROUTES_INIT",
    "TRAEFIK_DYNAMIC_DIR",
    "routes_service",
]


# The service and the named volume that hold Traefik's routes (its file provider's directory): composekit writes
# them into the volume through `docker exec` in this container, Traefik mounts the volume read-only.
ROUTES = "routes"


ROUTES_DIR = "/routes"


TRAEFIK_DYNAMIC_DIR = "/etc/traefik/dynamic"


# The routes file in the routes volume: the one Traefik loads (composekit/engine/switch.py writes its generations).
ROUTES_FILE = "composekit.yml"


# The name, in RenderedStack.configs, of the routes the stack starts with (render/traefik.py initial_routes): the
# routes container copies them into the volume when it holds no routes file yet.
INITIAL_ROUTES = "routes.yml"


# PID 1 of the routes container: puts the initial routes (argv[2]) in place as argv[1] unless a routes file is there
# already (os.link never replaces a file: a generation `up` wrote is never overwritten, by a restart or a recreated
# container), then waits, and exits at once on SIGTERM (a bare pause would ignore it).
ROUTES_INIT = (
    "import os, signal, sys\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "path, text = sys.argv[1], sys.argv[2]\n"
    "if not os.path.exists(path):\n"
    "    tmp = os.path.join(os.path.dirname(path), '.' + os.path.basename(path) + '.initial.tmp')\n"
    "    with open(tmp, 'w') as f:\n"
    "        f.write(text)\n"
    "        f.flush()\n"
    "        os.fsync(f.fileno())\n"
    "    os.chmod(tmp, 0o644)\n"
    "    try:\n"
    "        os.link(tmp, path)\n"
    "        print('wrote the initial routes into', path, flush=True)\n"
    "    except FileExistsError:\n"
    "        pass\n"
    "    except OSError:\n"  # a filesystem without hard links
    "        if not os.path.exists(path):\n"
    "            os.rename(tmp, path)\n"
    "    if os.path.exists(tmp):\n"
    "        os.remove(tmp)\n"
    "signal.pause()\n"
)


def routes_service(config: Config, file: str, initial: str) -> dict[str, Any]:
    """The container that holds a routes volume read-write (a stack's own, or the shared edge's: render/edge.py):
    it links ``initial`` in as ``file`` when the volume has none, then idles; no network, no capability, a read-only
    root."""
    return {
        "image": config.images.python,
        "command": ["python3", "-I", "-c", ROUTES_INIT, f"{ROUTES_DIR}/{file}", initial],
        "restart": "always",
        "user": "0:0",
        "volumes": [f"{ROUTES}:{ROUTES_DIR}"],
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": 16,
        "logging": logging_options(config),
    }
