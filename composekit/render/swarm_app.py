"""The app's process in mode: swarm: one process per container (app_command), how long a stopping task drains,
where the app's containers find composekit's files and secrets (swarm_mode: the ModeFacts render/services.py builds
the app's services from), and the warnings about keys that work differently under Swarm."""

from __future__ import annotations

from ..config.model import Config
from .dockerfile import GUNICORN_CONF_PATH
from .names import FILES_DIR, GRACEFUL_TIMEOUT
from .secrets import SECRET_ENV, SECRET_ENV_PATH
from .services import ModeFacts
from .traefik import SWARM_REFRESH_SECONDS

__all__ = [
    "DRAIN_RUNNER_PATH",
    "DRAIN_SECONDS",
    "FILE_TARGETS",
    "SECRETS_DIR",
    "app_command",
    "explicit_workers",
    "swarm_mode",
    "swarm_warnings",
]

SECRETS_DIR = "/run/secrets"
DRAIN_RUNNER_PATH = f"{FILES_DIR}/uvicorn_drain.py"
# Keep-alive of the app's connections, above Traefik's idle timeout towards it (60s, render/traefik.py).
KEEP_ALIVE = 75
# How long a task Swarm stops keeps serving before its graceful stop (runtime/uvicorn_drain.py): Traefik's Swarm
# provider drops a task whose desired state is no longer "running" at its next poll (SWARM_REFRESH_SECONDS), plus
# a margin for the poll itself and the engine's answer.
DRAIN_SECONDS = SWARM_REFRESH_SECONDS + 2


# Where the app's containers find composekit's files (ServiceSpec.files), each a Swarm config.
FILE_TARGETS = {
    "gunicorn.conf.py": GUNICORN_CONF_PATH,
    "uvicorn_drain.py": DRAIN_RUNNER_PATH,
    SECRET_ENV: SECRET_ENV_PATH,
}


def explicit_workers(config: Config) -> bool:
    return "workers" in config.app.model_fields_set


def app_command(config: Config) -> list[str]:
    """One process: uvicorn with --workers 1 (WEB_CONCURRENCY from an env file cannot change it), run by
    runtime/uvicorn_drain.py in the same process, which keeps a stopping task serving until Traefik has dropped it.
    The network `web` is the stack's own overlay where only Traefik reaches the app, hence --forwarded-allow-ips=*.
    With app/workers set: gunicorn with gunicorn.conf.py, which sizes the workers as in compose mode and drains
    the same way (DRAIN_SECONDS in the environment)."""
    app = config.app
    if explicit_workers(config):
        return ["gunicorn", "--config", GUNICORN_CONF_PATH, app.module]
    return [
        "python3",
        DRAIN_RUNNER_PATH,
        "--drain-seconds",
        str(DRAIN_SECONDS),
        app.module,
        "--host",
        "0.0.0.0",
        "--port",
        str(app.port),
        "--workers",
        "1",
        "--proxy-headers",
        "--forwarded-allow-ips=*",
        "--timeout-keep-alive",
        str(KEEP_ALIVE),
        "--timeout-graceful-shutdown",
        str(GRACEFUL_TIMEOUT),
    ]


def swarm_warnings(config: Config) -> list[str]:
    """What the CLI prints on stderr before rendering or deploying a swarm stack; [] in compose mode."""
    if config.mode != "swarm":
        return []
    warnings: list[str] = []
    app = config.app
    if explicit_workers(config):
        what = (
            "as many worker processes as its CPUs and memory allow"
            if app.workers == "auto"
            else f"{app.workers} worker processes"
        )
        warnings.append(
            f"app/workers: {app.workers} runs gunicorn with {what} in each of the app's containers; in mode: swarm, "
            "Swarm replicates containers (app/replicas), so one process per container is the usual choice: remove "
            "app/workers to run one uvicorn process per container"
        )
    if app.volumes:
        names = ", ".join(sorted(app.volumes))
        warnings.append(
            f"app/volumes: {names}: in mode: swarm a named volume is local to the node a task runs on; replicas on "
            "different nodes do not share it (pin the app to one node with app/placement, or keep the data in the "
            "database)"
        )
    return warnings


def swarm_mode(config: Config) -> ModeFacts:
    """mode: swarm's app: one process per container (app_command); the secret files under /run/secrets; proxy
    headers trusted on the stack's own network (Traefik's address there is not fixed); a stopping task drains."""
    explicit = explicit_workers(config)
    return ModeFacts(
        secrets_dir=SECRETS_DIR,
        forwarded_allow_ips="*",
        server_command=app_command(config),
        server_files=("gunicorn.conf.py",) if explicit else ("uvicorn_drain.py",),
        # gunicorn.conf.py's drain; uvicorn_drain.py takes it as an argument
        server_variables={"DRAIN_SECONDS": str(DRAIN_SECONDS)} if explicit else {},
        drain_seconds=DRAIN_SECONDS,
    )
