"""mode: swarm's render (render/swarm.py): golden files, determinism, content-hashed names, secrets, `$` escaping,
where the config's keys land, warnings, and what `docker stack deploy`'s own loader makes of the files."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import load_project
from composekit.errors import ConfigError
from composekit.render.names import APP_SERVICE, MIGRATE_SERVICE
from composekit.render.stack import MANIFEST_FILE, check_stack, render_stack, write_stack
from composekit.render.swarm import MIGRATE_FILE, STACK_FILE, TRAEFIK_SERVICE, render_swarm
from composekit.render.swarm_app import app_command, swarm_warnings
from composekit.render.swarm_variables import deploy_variables, swarm_image

from .golden import assert_matches_golden

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "swarm"
FASTAPI = FIXTURES / "fastapi.yaml"
POSTGRES = FIXTURES / "fastapi-postgres.yaml"
PLANTED = ("planted-env-file-secret-7f3a9c", "planted-db-password-5e1d8b")


def doc(files: dict[str, str], name: str = STACK_FILE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(files[name])
    return loaded


def copy_fixtures(tmp_path: Path) -> Path:
    """tests/fixtures/swarm and the stacks its configs point at, with the same relative layout."""
    shutil.copytree(FIXTURES, tmp_path / "tests" / "fixtures" / "swarm")
    shutil.copytree(REPO / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns(".composekit", "__pycache__"))
    return tmp_path / "tests" / "fixtures" / "swarm"


@pytest.mark.parametrize(("config", "golden"), [(FASTAPI, "swarm-fastapi"), (POSTGRES, "swarm-fastapi-postgres")])
def test_matches_golden_files(config: Path, golden: str) -> None:
    assert_matches_golden(render_stack(load_project((config,))), golden)


def test_naming_one_more_config_file_changes_no_config_object_and_no_service(tmp_path: Path) -> None:
    """Traefik's files carry no list of the config files, so their content-hashed Swarm configs keep their names
    when a deploy names one more file (test_swarm's SSH node file): Traefik is not restarted."""
    copy = copy_fixtures(tmp_path)
    (copy / "nodes.yaml").write_text("swarm:\n  nodes:\n    worker-9: ssh://deploy@worker-9\n")
    one = render_stack(load_project((copy / FASTAPI.name,))).files
    two = render_stack(load_project((copy / FASTAPI.name, copy / "nodes.yaml"))).files
    stacks = (STACK_FILE, MIGRATE_FILE)
    skip = (*stacks, MANIFEST_FILE)  # the manifest hashes the stack files
    assert {k: v for k, v in one.items() if k not in skip} == {k: v for k, v in two.items() if k not in skip}
    for name in stacks:
        assert doc(one, name) == doc(two, name)  # the same config names, services and secrets
        assert one[name] != two[name]  # only its header names the files


def test_rendering_is_deterministic_across_locations(tmp_path: Path) -> None:
    copy = copy_fixtures(tmp_path)
    for name in (FASTAPI.name, POSTGRES.name):
        assert render_stack(load_project((FIXTURES / name,))).files == render_stack(load_project((copy / name,))).files


def test_the_files_of_the_stack() -> None:
    assert sorted(render_swarm(load_project((FASTAPI,)))) == [
        "migrate.yml",
        "stack.yml",
        "swarm/acme-ca-0.pem",
        "swarm/socket_proxy.py",
        "swarm/traefik-dynamic.yml",
        "swarm/traefik.yml",
        "swarm/uvicorn_drain.py",
    ]
    assert sorted(render_swarm(load_project((POSTGRES,)))) == [
        "migrate.yml",
        "stack.yml",
        "swarm/gunicorn.conf.py",
        "swarm/socket_proxy.py",
        "swarm/traefik-dynamic.yml",
        "swarm/traefik.yml",
    ]


def config_names(files: dict[str, str]) -> dict[str, str]:
    return {key: value["name"] for key, value in doc(files)["configs"].items()}


def edited(tmp_path: Path, old: str, new: str, file: str = FASTAPI.name) -> dict[str, str]:
    path = tmp_path / "tests" / "fixtures" / "swarm" / file
    path.write_text(path.read_text().replace(old, new))
    return render_swarm(load_project((tmp_path / "tests" / "fixtures" / "swarm" / FASTAPI.name,)))


def test_config_names_change_when_and_only_when_their_content_changes(tmp_path: Path) -> None:
    copy = copy_fixtures(tmp_path)
    before = config_names(render_swarm(load_project((copy / FASTAPI.name,))))
    assert before == {
        "traefik-yml": before["traefik-yml"],
        "traefik-dynamic-yml": before["traefik-dynamic-yml"],
        "socket-proxy-py": before["socket-proxy-py"],
        "acme-ca-0-pem": before["acme-ca-0-pem"],
        "uvicorn-drain-py": before["uvicorn-drain-py"],
    }
    assert all(re.fullmatch(rf"shop_{key}-[0-9a-f]{{8}}", name) for key, name in before.items())
    # Nothing any config holds: no name changes.
    assert config_names(edited(tmp_path, "replicas: 3", "replicas: 5")) == before
    assert config_names(edited(tmp_path, "LOG_LEVEL: info", "LOG_LEVEL: debug")) == before
    # The ACME e-mail is in traefik.yml only.
    after = config_names(edited(tmp_path, "ops@example.com", "admin@example.com"))
    assert {k for k in before if before[k] != after[k]} == {"traefik-yml"}
    # The CA file's content: its config only.
    (copy / "ca.pem").write_text((copy / "ca.pem").read_text().replace("fixture", "other"))
    again = config_names(render_swarm(load_project((copy / FASTAPI.name,))))
    assert {k for k in after if after[k] != again[k]} == {"acme-ca-0-pem"}


def test_no_secret_value_in_any_rendered_file() -> None:
    for config in (FASTAPI, POSTGRES):
        project = load_project((config,))
        files = render_stack(project).files
        assert [secret for secret in PLANTED for text in files.values() if secret in text] == []
        assert all(secret not in value for secret in PLANTED for value in deploy_variables(project, "r1").values())
    files = render_swarm(load_project((POSTGRES,)))
    assert doc(files)["secrets"]["db_password"]["file"] == "../secrets/db_password"  # read by the deploying CLI
    assert doc(render_swarm(load_project((FASTAPI,))))["services"][APP_SERVICE]["env_file"] == ["../app.env"]


def test_only_the_deliberate_variables_are_left_for_docker_stack_deploy() -> None:
    texts = [render_swarm(load_project((c,)))[name] for c in (FASTAPI, POSTGRES) for name in (STACK_FILE, MIGRATE_FILE)]
    variables = {m for text in texts for m in re.findall(r"(?<!\$)\$\{(\w+)", text)}
    assert variables == {
        "COMPOSEKIT_RELEASE",
        "COMPOSEKIT_APP_REPLICAS",
        "COMPOSEKIT_TRAEFIK_REPLICAS",
        "COMPOSEKIT_DB_SECRET_VERSION",
    }


def test_a_dollar_in_a_value_stays_literal() -> None:
    files = render_swarm(load_project((FASTAPI,)))
    for name in (STACK_FILE, MIGRATE_FILE):
        service = next(iter(s for k, s in doc(files, name)["services"].items() if k in (APP_SERVICE, MIGRATE_SERVICE)))
        assert service["environment"]["PRICE_FORMAT"] == "$$ {amount}"  # Compose reads "$$" as one "$"
    assert "MIIBfixture$notreal" in files["swarm/acme-ca-0.pem"]  # a config file's content is never interpolated


def test_replicas_placement_and_image_land_where_expected() -> None:
    app = doc(render_swarm(load_project((FASTAPI,))))["services"][APP_SERVICE]
    assert app["image"] == "shop-app:${COMPOSEKIT_RELEASE:?set by composekit: the release to deploy}"
    assert app["deploy"]["replicas"] == "${COMPOSEKIT_APP_REPLICAS:-3}"
    assert app["deploy"]["placement"] == {"constraints": ["node.labels.zone == a"]}
    assert app["deploy"]["endpoint_mode"] == "dnsrr"
    assert app["deploy"]["resources"]["limits"] == {"cpus": "1", "memory": "512m", "pids": 4096}
    files = render_swarm(load_project((POSTGRES,)))
    app, migrate = doc(files)["services"][APP_SERVICE], doc(files, MIGRATE_FILE)["services"][MIGRATE_SERVICE]
    image = "registry.example.com/team/notes-app:${COMPOSEKIT_RELEASE:?set by composekit: the release to deploy}"
    assert app["image"] == migrate["image"] == image
    assert app["deploy"]["replicas"] == "${COMPOSEKIT_APP_REPLICAS:-2}"
    assert "placement" not in app["deploy"]


def test_swarm_image() -> None:
    assert swarm_image(load_project((FASTAPI,)).config, "r7") == "shop-app:r7"
    assert swarm_image(load_project((POSTGRES,)).config, "r7") == "registry.example.com/team/notes-app:r7"


def test_one_process_per_container_unless_workers_is_set() -> None:
    config = load_project((FASTAPI,)).config
    assert app_command(config) == [
        "python3",
        "/etc/composekit/uvicorn_drain.py",  # uvicorn's command line, in this one process, with a drain delay
        "--drain-seconds",
        "7",
        "app.main:app",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--workers",
        "1",
        "--proxy-headers",
        "--forwarded-allow-ips=*",
        "--timeout-keep-alive",
        "75",
        "--timeout-graceful-shutdown",
        "30",
    ]
    files = render_swarm(load_project((POSTGRES,)))
    app = doc(files)["services"][APP_SERVICE]
    assert app["command"] == ["gunicorn", "--config", "/etc/composekit/gunicorn.conf.py", "app.main:app"]
    assert app["environment"]["WEB_CONCURRENCY"] == "2"
    assert app["configs"] == [{"source": "gunicorn-conf-py", "target": "/etc/composekit/gunicorn.conf.py"}]
    # gunicorn drains too: gunicorn.conf.py reads DRAIN_SECONDS and delays the master's first SIGTERM by it.
    assert app["environment"]["DRAIN_SECONDS"] == "7"
    assert app["stop_grace_period"] == "47s"
    migrate = doc(files, "migrate.yml")["services"]["migrate"]
    assert "DRAIN_SECONDS" not in migrate["environment"]
    uvicorn = doc(render_swarm(load_project((FASTAPI,))))["services"][APP_SERVICE]
    assert uvicorn["configs"] == [{"source": "uvicorn-drain-py", "target": "/etc/composekit/uvicorn_drain.py"}]
    assert "DRAIN_SECONDS" not in uvicorn["environment"]
    # The drain (7 s: Traefik's 5 s poll + 2) comes before uvicorn's graceful stop (30 s), both inside Swarm's wait.
    assert uvicorn["stop_grace_period"] == "47s"


def test_rolling_updates_and_restarts() -> None:
    app = doc(render_swarm(load_project((FASTAPI,))))["services"][APP_SERVICE]
    update = app["deploy"]["update_config"]
    assert (update["order"], update["failure_action"], update["parallelism"]) == ("start-first", "rollback", 1)
    assert int(update["monitor"].rstrip("s")) >= int(app["healthcheck"]["start_period"].rstrip("s"))
    assert app["deploy"]["rollback_config"]["order"] == "start-first"
    assert app["deploy"]["restart_policy"]["condition"] == "any"
    assert "restart" not in app and "tmpfs" not in app  # `docker stack deploy` would ignore both
    assert app["volumes"] == [{"type": "tmpfs", "target": "/tmp"}] and app["read_only"] is True
    assert app["cap_drop"] == ["ALL"]


def test_traefik_labels_route_the_domain_with_health_checks_and_retries() -> None:
    labels = doc(render_swarm(load_project((FASTAPI,))))["services"][APP_SERVICE]["deploy"]["labels"]
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.http.routers.shop.rule"] == "Host(`shop.example.com`)"
    assert labels["traefik.http.routers.shop.tls.certresolver"] == "composekit"
    assert labels["traefik.http.routers.shop.middlewares"] == "security-headers@file,shop-retry@swarm"
    assert labels["traefik.http.services.shop.loadbalancer.server.port"] == "8000"
    assert labels["traefik.http.services.shop.loadbalancer.healthcheck.path"] == "/health"
    assert labels["traefik.http.middlewares.shop-retry.retry.attempts"] == "3"


def test_traefik_on_the_manager_with_host_ports_and_no_socket() -> None:
    files = render_swarm(load_project((POSTGRES,)))
    services = doc(files)["services"]
    traefik, proxy = services[TRAEFIK_SERVICE], services["socket-proxy"]
    assert traefik["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    assert traefik["deploy"]["replicas"] == "${COMPOSEKIT_TRAEFIK_REPLICAS:-1}"  # 0 only at a first deploy's first step
    assert [(p["published"], p["target"], p["mode"]) for p in traefik["ports"]] == [
        (8080, 80, "host"),
        (8443, 443, "host"),
    ]
    mounts = [(name, m) for name, s in services.items() for m in s.get("volumes", []) if "docker.sock" in str(m)]
    assert mounts == [
        (
            "socket-proxy",
            {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "read_only": True},
        )
    ]
    assert proxy["networks"] == ["api"] and doc(files)["networks"]["api"] == {"driver": "overlay", "internal": True}
    assert proxy["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    static = yaml.safe_load(files["swarm/traefik.yml"])
    assert static["providers"]["swarm"] == {
        "endpoint": "tcp://socket-proxy:2375",
        "exposedByDefault": False,
        "network": "notes_web",
        "refreshSeconds": "5s",
        "watch": True,
    }
    assert "docker" not in static["providers"] and "api" not in static
    assert static["serversTransport"]["forwardingTimeouts"]["dialTimeout"] == "1s"  # then the retry middleware


def test_database_on_the_manager_with_a_versioned_secret() -> None:
    project = load_project((POSTGRES,))
    files = render_swarm(project)
    stack = doc(files)
    db = stack["services"]["db"]
    assert db["deploy"]["placement"] == {"constraints": ["node.role == manager"]}
    assert db["secrets"] == ["db_password"] and db["volumes"] == ["db-data:/var/lib/postgresql/data"]
    assert stack["secrets"]["db_password"]["name"] == (
        "notes_db_password-${COMPOSEKIT_DB_SECRET_VERSION:?set by composekit: a hash of the password}"
    )
    app = stack["services"][APP_SERVICE]
    assert app["environment"]["DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert app["networks"] == ["web", "db"]


def test_migrate_file_declares_what_it_uses_as_the_stack_does() -> None:
    for config in (FASTAPI, POSTGRES):
        files = render_swarm(load_project((config,)))
        stack, migrate = doc(files), doc(files, MIGRATE_FILE)
        assert list(migrate["services"]) == [MIGRATE_SERVICE]
        job = migrate["services"][MIGRATE_SERVICE]
        assert job["deploy"]["mode"] == "replicated-job"
        assert job["deploy"]["restart_policy"] == {"condition": "none"}
        assert job["command"] == ["python3", "-m", "app.migrate"]
        for section in ("networks", "secrets", "configs", "volumes"):
            for key, value in migrate.get(section, {}).items():
                assert stack[section][key] == value, (section, key)
        app = stack["services"][APP_SERVICE]
        # The app's environment but for its gunicorn's drain (DRAIN_SECONDS), which the job has no use for.
        app_environment = {k: v for k, v in app["environment"].items() if k != "DRAIN_SECONDS"}
        assert (job["environment"], job.get("secrets"), job["networks"]) == (
            app_environment,
            app.get("secrets"),
            app["networks"],
        )


def test_no_migrate_file_without_a_command(tmp_path: Path) -> None:
    copy = copy_fixtures(tmp_path)
    (copy / FASTAPI.name).write_text((copy / FASTAPI.name).read_text().replace("migrate:\n  command:", "#"))
    assert MIGRATE_FILE not in render_swarm(load_project((copy / FASTAPI.name,)))


def test_deploy_variables(tmp_path: Path) -> None:
    project = load_project((POSTGRES,))
    variables = deploy_variables(project, "r1")
    assert variables == {
        "COMPOSEKIT_RELEASE": "r1",
        "COMPOSEKIT_APP_REPLICAS": "2",
        "COMPOSEKIT_TRAEFIK_REPLICAS": "1",
        "COMPOSEKIT_DB_SECRET_VERSION": variables["COMPOSEKIT_DB_SECRET_VERSION"],
    }
    assert re.fullmatch(r"[0-9a-f]{12}", variables["COMPOSEKIT_DB_SECRET_VERSION"])
    assert deploy_variables(project, "r2", replicas=5)["COMPOSEKIT_APP_REPLICAS"] == "5"
    assert deploy_variables(project, "r2") == {**variables, "COMPOSEKIT_RELEASE": "r2"}
    assert deploy_variables(load_project((FASTAPI,)), "r1") == {
        "COMPOSEKIT_RELEASE": "r1",
        "COMPOSEKIT_APP_REPLICAS": "3",
        "COMPOSEKIT_TRAEFIK_REPLICAS": "1",
    }
    assert deploy_variables(load_project((FASTAPI,)), "r1", replicas=0, traefik=False)[
        "COMPOSEKIT_TRAEFIK_REPLICAS"
    ] == ("0")
    copy = copy_fixtures(tmp_path)
    (copy / "secrets" / "db_password").write_text("another-password\n")
    changed = deploy_variables(load_project((copy / POSTGRES.name,)), "r1")
    assert changed["COMPOSEKIT_DB_SECRET_VERSION"] != variables["COMPOSEKIT_DB_SECRET_VERSION"]


def test_an_unreadable_password_file_names_the_key(tmp_path: Path) -> None:
    copy = copy_fixtures(tmp_path)
    project = load_project((copy / POSTGRES.name,))
    (copy / "secrets" / "db_password").unlink()
    (copy / "secrets" / "db_password").mkdir()
    with pytest.raises(ConfigError) as caught:
        deploy_variables(project, "r1")
    assert caught.value.problems == [
        f'fastapi-postgres.yaml: database/password_file: cannot read "secrets/db_password" '
        f"({copy}/secrets/db_password): Is a directory"
    ]


def test_warnings() -> None:
    assert swarm_warnings(load_project((FASTAPI,)).config) == []
    assert swarm_warnings(load_project((POSTGRES,)).config) == [
        "app/workers: 2 runs gunicorn with 2 worker processes in each of the app's containers; in mode: swarm, "
        "Swarm replicates containers (app/replicas), so one process per container is the usual choice: remove "
        "app/workers to run one uvicorn process per container"
    ]


def test_warnings_for_auto_workers_and_volumes(tmp_path: Path) -> None:
    copy = copy_fixtures(tmp_path)
    text = (copy / FASTAPI.name).read_text()
    (copy / FASTAPI.name).write_text(
        text.replace("  replicas: 3\n", "  replicas: 3\n  workers: auto\n  volumes: {data: /data}\n")
    )
    assert swarm_warnings(load_project((copy / FASTAPI.name,)).config) == [
        "app/workers: auto runs gunicorn with as many worker processes as its CPUs and memory allow in each of "
        "the app's containers; in mode: swarm, Swarm replicates containers (app/replicas), so one process per "
        "container is the usual choice: remove app/workers to run one uvicorn process per container",
        "app/volumes: data: in mode: swarm a named volume is local to the node a task runs on; replicas on different "
        "nodes do not share it (pin the app to one node with app/placement, or keep the data in the database)",
    ]
    assert swarm_warnings(load_project((REPO / "stacks" / "fastapi" / "composekit.yaml",)).config) == []


def test_switching_modes_removes_the_other_modes_files(tmp_path: Path) -> None:
    copy = copy_fixtures(tmp_path)
    swarm = load_project((copy / FASTAPI.name,))
    write_stack(swarm)
    out = swarm.out_dir
    assert (out / "stack.yml").is_file() and (out / "swarm" / "traefik.yml").is_file()
    assert check_stack(swarm) == ""
    (copy / FASTAPI.name).write_text(
        "\n".join(
            line
            for line in (copy / FASTAPI.name).read_text().splitlines()
            if not line.startswith(("mode:", "  replicas:", "  placement:"))
        )
        + "\n"
    )
    compose = load_project((copy / FASTAPI.name,))
    diff = check_stack(compose)
    assert "--- .composekit/stack.yml (on disk)\n+++ /dev/null\n" in diff
    assert "--- .composekit/swarm/socket_proxy.py (on disk)\n+++ /dev/null\n" in diff
    write_stack(compose)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        MANIFEST_FILE,
        "Dockerfile",
        "Dockerfile.dockerignore",
        "compose.yaml",
    ]
    assert check_stack(compose) == ""
    write_stack(swarm)  # and back: compose.yaml is stale again, the swarm files are back
    assert not (out / "compose.yaml").exists() and (out / "stack.yml").is_file()
    assert check_stack(swarm) == ""


@functools.cache
def _stack_config_cli() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "stack", "config", "--help"], capture_output=True, text=True, timeout=30)
    return docker if probe.returncode == 0 else None


@pytest.mark.parametrize("config", [FASTAPI, POSTGRES], ids=lambda p: p.stem)
def test_docker_stack_loader_reads_the_files(config: Path, tmp_path: Path) -> None:
    """The Docker CLI's own compose loader (what `docker stack deploy` runs before it talks to the engine)
    accepts both files and substitutes the variables deploy_variables gives; no daemon involved. (The CLI is looked
    for here, not in a skipif mark that every xdist worker would evaluate at collection.)"""
    if _stack_config_cli() is None:
        pytest.skip("needs a Docker CLI with `docker stack config` (23.0+)")
    copy = copy_fixtures(tmp_path)
    project = load_project((copy / config.name,))
    write_stack(project)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **deploy_variables(project, "r42")}
    docker = _stack_config_cli()
    assert docker is not None
    for name in (STACK_FILE, MIGRATE_FILE):
        run = subprocess.run(
            [docker, "stack", "config", "-c", name],
            cwd=project.out_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "nsupported" not in run.stderr, run.stderr
        loaded = yaml.safe_load(run.stdout)
        service = loaded["services"][APP_SERVICE if name == STACK_FILE else MIGRATE_SERVICE]
        assert service["image"] == swarm_image(project.config, "r42")
        if name == STACK_FILE:
            assert service["deploy"]["replicas"] == project.config.app.replicas
