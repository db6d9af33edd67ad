"""The rendered stack names its deployment: compose.yaml carries Traefik's initial routes (the domain to the app's
service), which the routes container puts into a fresh routes volume and never over a generation `up` wrote. So
plain `docker compose up` serves the domain, and `render --check` sees a change of domain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from composekit.config.project import load_project
from composekit.render.routes_volume import INITIAL_ROUTES, ROUTES_DIR, ROUTES_FILE
from composekit.render.stack import check_stack, render_stack, write_stack
from composekit.render.traefik import initial_routes, routes_file

CONFIG = "name: shop\ndomain: shop.example.com\napp: {module: app.main:app, port: 8080}\n"


def app_in(tmp_path: Path, config: str = CONFIG) -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(config)
    return tmp_path / "composekit.yaml"


def routes_command(tmp_path: Path) -> list[str]:
    doc = yaml.safe_load(render_stack(load_project((app_in(tmp_path),))).compose)
    return doc["services"]["routes"]["command"]  # type: ignore[no-any-return]


def test_compose_carries_the_initial_routes_of_the_domain_to_the_app_service(tmp_path: Path) -> None:
    command = routes_command(tmp_path)
    assert command[:3] == ["python3", "-I", "-c"]
    assert command[4] == f"{ROUTES_DIR}/{ROUTES_FILE}"
    routes: dict[str, Any] = yaml.safe_load(command[5])
    router = routes["http"]["routers"]["shop"]
    assert router["rule"] == "Host(`shop.example.com`)"
    assert router["tls"] == {"certResolver": "composekit"}
    assert router["middlewares"] == ["security-headers"]
    assert routes["http"]["services"]["shop"] == {"loadBalancer": {"servers": [{"url": "http://app:8080"}]}}
    assert routes["tls"] == {"options": {"default": {"minVersion": "VersionTLS12"}}}
    project = load_project((tmp_path / "composekit.yaml",))
    assert command[5] == initial_routes(project.config) == routes_file(project.config, "initial", ["app"], ["app"])
    assert render_stack(project).configs[INITIAL_ROUTES] == command[5]
    assert INITIAL_ROUTES not in yaml.safe_load(render_stack(project).compose)["configs"]  # not a Compose config


def test_check_reports_a_changed_domain_as_drift(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    project = load_project((config_file,))
    write_stack(project)
    assert check_stack(project) == ""
    config_file.write_text(CONFIG.replace("shop.example.com", "www.example.org"))
    diff = check_stack(load_project((config_file,)))
    assert "--- .composekit/compose.yaml (on disk)\n+++ .composekit/compose.yaml (rendered)\n" in diff
    assert "-            rule: Host(`shop.example.com`)\n" in diff
    assert "+            rule: Host(`www.example.org`)\n" in diff


def put_initial_routes(tmp_path: Path, volume: Path) -> str:
    """Run the routes container's PID 1 (without its final wait) on ``volume``; returns the routes it carries."""
    command = routes_command(tmp_path)
    script, text = command[3], command[5]
    assert script.endswith("signal.pause()\n")
    once = script.removesuffix("signal.pause()\n")
    subprocess.run([sys.executable, "-I", "-c", once, str(volume / ROUTES_FILE), text], check=True, timeout=30)
    return text


def test_the_routes_container_fills_a_fresh_volume_only(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    text = put_initial_routes(tmp_path, volume)
    assert (volume / ROUTES_FILE).read_text() == text
    assert sorted(p.name for p in volume.iterdir()) == [ROUTES_FILE]  # no temporary file left
    live = "# Written by composekit: generation 0123abcd. Do not edit: `composekit up` rewrites it.\n"
    (volume / ROUTES_FILE).write_text(live)  # a generation `up` wrote; then the container restarts
    put_initial_routes(tmp_path, volume)
    assert (volume / ROUTES_FILE).read_text() == live
    assert sorted(p.name for p in volume.iterdir()) == [ROUTES_FILE]
