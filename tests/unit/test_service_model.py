"""One description of the app's services, two renderers: for a config, the app and its migration get the same
environment, limits, secrets, user and hardening, in compose mode and in mode: swarm alike (issue 17).

The migration runs the app's image against the app's database: a migration that lacked the app's memory limit could
take the host's memory, one that lacked a variable the app's settings read could fail where the app starts. So
both renders are compared as `docker compose` and `docker stack deploy` read them (the parsed YAML), not through
the renderers' own helpers."""

from __future__ import annotations

import ast
import posixpath
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import load_project
from composekit.render.stack import render_stack

REPO = Path(__file__).resolve().parents[2]

# What the renders may set differently, each for its reason; everything else must agree.
# - FORWARDED_ALLOW_IPS: compose trusts proxy headers from Traefik's fixed address on `web`; Swarm gives Traefik
#   no fixed address on the stack's own overlay, so "*" (only Traefik reaches the app there).
MODE_VARIABLES = {"FORWARDED_ALLOW_IPS"}
# - DATABASE_PASSWORD_FILE: the same file, where each mode puts it (the files volume; Swarm's /run/secrets):
#   compared by its name.
SECRET_PATH_VARIABLES = {"DATABASE_PASSWORD_FILE"}
# - DRAIN_SECONDS: the app server's own drain before a graceful stop (mode: swarm with app/workers: gunicorn.conf.py
#   reads it); the migration runs no server.
APP_SERVER_VARIABLES = {"DRAIN_SECONDS"}

SWARM_ONLY_APP_KEYS = ("replicas", "placement")
SWARM_ONLY_KEYS = ("registry", "swarm")

FULL = {
    "name": "shop",
    "domain": "shop.example.com",
    "acme": {"email": "ops@example.com"},
    "app": {
        "path": "../stacks/fastapi",
        "module": "app.main:app",
        "cpus": 1.5,
        "memory": "768M",
        "pids_limit": 300,
        "cap_add": ["CHOWN"],
        "workers_per_core": 2,
        "max_workers": 6,
        "env_file": "app.env",
        "environment": {"LOG_LEVEL": "debug"},
        "secrets": {"SESSION_KEY": "secrets/session_key", "API_TOKEN": "secrets/api_token"},
        "volumes": {"data": "/data", "uploads": "/srv/uploads"},
    },
    "migrate": {"command": ["python3", "-m", "app.migrate", "--verbose"]},
    "database": {"name": "shop", "user": "shop", "password_file": "secrets/db_password"},
}
MINIMAL = {
    "name": "tiny",
    "domain": "tiny.example.com",
    "app": {"path": "../stacks/fastapi", "module": "app.main:app", "read_only": False},
    "migrate": {"command": "python3 -m app.migrate"},
}
CONFIGS = [
    "stacks/fastapi/composekit.yaml",
    "stacks/fastapi-postgres/composekit.yaml",
    "tests/fixtures/swarm/fastapi.yaml",
    "tests/fixtures/swarm/fastapi-postgres.yaml",
    "own/minimal.yaml",
    "own/full-composekit.yaml",
    "own/full-postgres.yaml",
    "own/full-database_url.yaml",
]


def _tree(tmp_path: Path) -> Path:
    """stacks/ and tests/fixtures/swarm with the same relative layout, the secret files the configs name, and own/:
    a config with everything the app and the migration share (one per database/variables) and a minimal one."""
    shutil.copytree(REPO / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
    shutil.copytree(REPO / "tests" / "fixtures" / "swarm", tmp_path / "tests" / "fixtures" / "swarm")
    (tmp_path / "stacks" / "fastapi-postgres" / "secrets").mkdir(exist_ok=True)
    (tmp_path / "stacks" / "fastapi-postgres" / "secrets" / "db_password").write_text("not-a-real-password\n")
    own = tmp_path / "own"
    (own / "secrets").mkdir(parents=True)
    for name in ("session_key", "api_token", "db_password"):
        (own / "secrets" / name).write_text(f"not-a-real-{name}\n")
    (own / "app.env").write_text("LOG_FORMAT=json\n")
    (own / "minimal.yaml").write_text(yaml.safe_dump(MINIMAL))
    for variables in ("composekit", "postgres", "database_url"):
        full = {**FULL, "database": {**FULL["database"], "variables": variables}}  # type: ignore[dict-item]
        (own / f"full-{variables}.yaml").write_text(yaml.safe_dump(full))
    return tmp_path


def _render(config: Path, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(app, migration) as the mode's tool reads them: compose.yaml's services, or stack.yml's app and migrate.yml's
    job. The config is rendered in ``mode`` (without the swarm-only keys in compose mode), from its own directory."""
    data = yaml.safe_load(config.read_text())
    data["mode"] = mode
    if mode == "compose":
        for key in SWARM_ONLY_KEYS:
            data.pop(key, None)
        for key in SWARM_ONLY_APP_KEYS:
            data["app"].pop(key, None)
    variant = config.with_name(f"{config.stem}-{mode}.yaml")
    variant.write_text(yaml.safe_dump(data))
    files = render_stack(load_project((variant,))).files
    if mode == "compose":
        services = yaml.safe_load(files["compose.yaml"])["services"]
        return services["app"], services["migrate"]
    stack, migrate = yaml.safe_load(files["stack.yml"]), yaml.safe_load(files["migrate.yml"])
    return stack["services"]["app"], migrate["services"]["migrate"]


def _secret_files(service: dict[str, Any]) -> dict[str, str]:
    """Variable -> the name of the file runtime/secret_env.py fills it from (the command's --env and --url)."""
    command = service["command"]
    if "--" not in command:
        return {}
    args, found = command[: command.index("--")], {}
    for i, arg in enumerate(args):
        if arg == "--env":
            found[args[i + 1]] = posixpath.basename(args[i + 2])
        elif arg == "--url":
            found[args[i + 1]] = posixpath.basename(args[i + 3])
    return found


def _facts(service: dict[str, Any], *, mode: str, app: bool) -> dict[str, Any]:
    """What a migration must share with its app (the app server's own variables aside)."""
    environment = dict(service.get("environment") or {})
    for name in APP_SERVER_VARIABLES if app else ():
        environment.pop(name, None)
    volumes = service.get("volumes", [])
    tmpfs = service.get("tmpfs", []) + [v["target"] for v in volumes if isinstance(v, dict) and v["type"] == "tmpfs"]
    return {
        "environment": environment,
        "env_file": service.get("env_file"),
        "limits": service.get("deploy", {}).get("resources", {}).get("limits"),
        "secret_files": _secret_files(service),
        # Swarm mounts them into each service; compose has the `files` service copy them into the files volume
        "secrets": sorted(service.get("secrets", [])) if mode == "swarm" else None,
        "user": service.get("user"),
        "read_only": service.get("read_only", False),
        "cap_drop": service.get("cap_drop"),
        "cap_add": service.get("cap_add"),
        "tmpfs": tmpfs,
        "data_volumes": sorted(v for v in volumes if isinstance(v, str)),
        "networks": service.get("networks"),
        "secret_env": service["command"][: service["command"].index("--") + 1] if "--" in service["command"] else [],
    }


@pytest.mark.parametrize("name", CONFIGS)
def test_the_migration_gets_what_the_app_gets_in_both_modes(name: str, tmp_path: Path) -> None:
    config = _tree(tmp_path) / name
    facts = {}
    for mode in ("compose", "swarm"):
        app, migrate = _render(config, mode)
        facts[mode] = _facts(app, mode=mode, app=True)
        assert _facts(migrate, mode=mode, app=False) == facts[mode], f"{mode}: the migration differs from the app"
        assert migrate["image"] == app["image"]
    for mode_facts in facts.values():
        del mode_facts["secrets"]  # compose has the `files` service copy them into the files volume
        environment = mode_facts["environment"]
        for variable in MODE_VARIABLES & set(environment):
            del environment[variable]
        for variable in SECRET_PATH_VARIABLES & set(environment):
            environment[variable] = posixpath.basename(environment[variable])
        # the secret files' directory is the mode's (compared above: secret_files)
        mode_facts["secret_env"] = [posixpath.basename(arg) for arg in mode_facts["secret_env"]]
    assert facts["compose"] == facts["swarm"]


def test_the_full_config_reaches_both_services(tmp_path: Path) -> None:
    """The comparison above is not vacuous: the full config's limits, secrets and variables are all there."""
    config = _tree(tmp_path) / "own" / "full-composekit.yaml"
    for mode in ("compose", "swarm"):
        for service in _render(config, mode):
            facts = _facts(service, mode=mode, app=False)
            facts["environment"]["DATABASE_PASSWORD_FILE"] = posixpath.basename(
                facts["environment"]["DATABASE_PASSWORD_FILE"]
            )
            assert facts["limits"] == {"cpus": "1.5", "memory": "768m", "pids": 300}
            assert facts["secret_files"] == {"API_TOKEN": "env_API_TOKEN", "SESSION_KEY": "env_SESSION_KEY"}
            assert {
                k: facts["environment"][k] for k in ("APP_PORT", "WORKERS_PER_CORE", "MAX_WORKERS", "LOG_LEVEL")
            } == {
                "APP_PORT": "8000",
                "WORKERS_PER_CORE": "2",
                "MAX_WORKERS": "6",
                "LOG_LEVEL": "debug",
            }
            assert facts["environment"]["DATABASE_PASSWORD_FILE"] == "db_password"
            assert (facts["cap_drop"], facts["cap_add"], facts["read_only"], facts["tmpfs"]) == (
                ["ALL"],
                ["CHOWN"],
                True,
                ["/tmp"],
            )
            assert facts["data_volumes"] == ["data:/data", "uploads:/srv/uploads"]
            if mode == "swarm":
                assert facts["secrets"] == ["db_password", "env_API_TOKEN", "env_SESSION_KEY"]


def test_no_render_module_imports_another_ones_private_names() -> None:
    """What the renderers share has a public name in its own module (render/names.py, secrets.py, services.py):
    render/swarm.py used to import five private helpers of render/compose.py, and they drifted."""
    render = REPO / "composekit" / "render"
    found = [
        f"{path.name} imports {node.module}.{alias.name}"
        for path in sorted(render.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert found == []


@pytest.mark.parametrize("variables", ["composekit", "postgres", "database_url"])
def test_a_process_gets_what_the_app_gets_but_its_own_limits_and_networks(variables: str, tmp_path: Path) -> None:
    """processes/ (compose mode: Swarm refuses them at load) run the app's image as the migration does: the same
    environment, secrets, volumes, user and confinement; only its command, limits, replicas and networks (no front
    network: no port) are its own."""
    own = _tree(tmp_path) / "own"
    full = {
        **FULL,
        "database": {**FULL["database"], "variables": variables},  # type: ignore[dict-item]
        "processes": {"worker": {"command": "arq app.worker.Settings", "memory": "256M", "replicas": 2}},
    }
    (own / "worker.yaml").write_text(yaml.safe_dump(full))
    services = yaml.safe_load(render_stack(load_project((own / "worker.yaml",))).files["compose.yaml"])["services"]
    app, worker = (
        _facts(services["app"], mode="compose", app=True),
        _facts(services["worker"], mode="compose", app=False),
    )
    assert worker.pop("limits") == {"memory": "256m", "pids": 300}
    assert app.pop("limits") == {"cpus": "1.5", "memory": "768m", "pids": 300}
    assert "web" in app.pop("networks") and "web" not in worker.pop("networks")
    assert worker == app
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][-3:] == ["--", "arq", "app.worker.Settings"]
