"""Docker.config_hash is the hash `docker compose up` labels a container with, also for a service with an env_file
(Compose before 5.5 hashes such a service without its env file in `config --hash`, docker/compose#14001): so a
process of an app with app/env_file is left alone by an unchanged `up`, and replaced when the file's content changes.
Needs the Compose CLI plugin (no daemon: `docker compose config` reads files only)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.engine.docker import Docker
from composekit.engine.steps import compose_secrets, docker_for
from composekit.render.stack import write_stack


@functools.cache
def _compose_cli() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    return docker if probe.returncode == 0 else None


@pytest.fixture(autouse=True)
def compose_cli() -> None:
    """Skips without the Compose plugin, looked for when a test of this module runs (not at every collection)."""
    if _compose_cli() is None:
        pytest.skip("needs the Docker CLI with the Compose v2 plugin")


ENV = "GREETING=hello\nPRICE=5$\nQUOTED='a$b c'\n"


def written(tmp_path: Path) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "prod.env").write_text(ENV)
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "api_key").write_text("k3y\n")
    (tmp_path / "composekit.yaml").write_text(
        "name: shop\ndomain: shop.example.com\n"
        "app: {module: app.main:app, env_file: config/prod.env, secrets: {API_KEY: secrets/api_key}}\n"
        "processes: {worker: {command: python -m app.worker}}\n"
        "schedules: {cleanup: {cron: '*/5 * * * *', command: python -m app.cleanup}}\n"
    )
    project = load_project((tmp_path / "composekit.yaml",))
    write_stack(project)
    return project


def docker_of(project: Project) -> Docker:
    docker = docker_for(project)
    docker.compose_environment.update(compose_secrets(project))
    return docker


def merged_hash(project: Project, service: str, env: dict[str, str]) -> str:
    """What `up` hashes: the service with the env file's variables in its environment and no env_file (written out
    by hand here, `$` escaped), hashed by `docker compose config --hash`."""
    doc = yaml.safe_load((project.out_dir / "compose.yaml").read_text())
    spec = doc["services"][service]
    del spec["env_file"]
    spec["environment"] = {**{k: v.replace("$", "$$") for k, v in env.items()}, **spec.get("environment", {})}
    merged = project.out_dir / "merged.yaml"
    merged.write_text(yaml.safe_dump(doc))
    docker = docker_of(project)
    cli = _compose_cli()
    assert cli is not None
    options = ["-p", "shop", "--project-directory", str(project.out_dir), "-f", str(merged)]
    run = subprocess.run(
        [cli, "compose", *options, "config", "--hash", service],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(Path.home()), **docker.compose_environment},
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.split()[-1]


@pytest.mark.parametrize("service", ["app", "worker", "scheduler"])
def test_the_hash_is_what_up_hashes_the_service_with_its_env_file_merged(tmp_path: Path, service: str) -> None:
    project = written(tmp_path)
    assert docker_of(project).config_hash(service) == merged_hash(
        project, service, {"GREETING": "hello", "PRICE": "5$", "QUOTED": "a$b c"}
    )


def test_a_changed_env_file_changes_the_hash_an_unchanged_one_keeps_it(tmp_path: Path) -> None:
    project = written(tmp_path)
    docker = docker_of(project)
    before = docker.config_hash("worker")
    assert docker_of(written(tmp_path)).config_hash("worker") == before
    (tmp_path / "config" / "prod.env").write_text(ENV.replace("hello", "bonjour"))
    assert docker.config_hash("worker") != before
