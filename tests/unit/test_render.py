"""Rendering: golden files for the example stack, determinism, and the rules the stack must keep."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.project import load_project
from composekit.errors import ConfigError
from composekit.render.stack import render_stack

from .golden import assert_matches_golden

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "stacks" / "fastapi" / "composekit.yaml"


def test_example_matches_golden_files() -> None:
    assert_matches_golden(render_stack(load_project((EXAMPLE,))), "fastapi")


def test_rendering_is_deterministic_across_locations(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLE.parent, copy)
    a = render_stack(load_project((EXAMPLE,))).files
    b = render_stack(load_project((copy / "composekit.yaml",))).files
    assert a == b


def test_naming_one_more_config_file_changes_nothing_a_container_reads(tmp_path: Path) -> None:
    """Traefik's configuration carries no list of the config files (only compose.yaml's header does): a deploy
    with `-c composekit.yaml -c prod.yaml` that changes nothing else must not recreate Traefik."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLE.parent, copy)
    (copy / "prod.yaml").write_text("smoke: {cert_warn_days: 21}\n")  # the default: nothing changes
    one = render_stack(load_project((copy / "composekit.yaml",)))
    two = render_stack(load_project((copy / "composekit.yaml", copy / "prod.yaml")))
    assert one.configs == two.configs
    first, second = yaml.safe_load(one.compose), yaml.safe_load(two.compose)
    assert first == second  # the services (Traefik's config-hash label included), configs, volumes
    assert one.compose != two.compose and "from composekit.yaml, prod.yaml." in two.compose.splitlines()[0]


def project_in(tmp_path: Path, config: str, files: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    for rel, content in (files if files is not None else {"requirements.txt": "fastapi\n"}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    (tmp_path / "composekit.yaml").write_text(config)
    return load_project((tmp_path / "composekit.yaml",))


BASE = "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n"


def compose(tmp_path: Path, config: str = BASE, files: dict[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(render_stack(project_in(tmp_path, config, files)).compose)
    return doc


def test_security_defaults(tmp_path: Path) -> None:
    doc = compose(tmp_path)
    traefik, app = doc["services"]["traefik"], doc["services"]["app"]
    assert not any("docker.sock" in volume for volume in traefik["volumes"])  # nothing holds it
    assert traefik["restart"] == app["restart"] == "always"
    assert "8080" not in str(traefik["ports"])  # no dashboard/API port published
    static = yaml.safe_load(render_stack(project_in(tmp_path, BASE)).configs["traefik.yml"])
    assert "api" not in static
    assert list(static["providers"]) == ["providersThrottleDuration", "file"]  # no Docker provider
    assert static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"] == {
        "to": "websecure",
        "scheme": "https",
        "permanent": True,
    }
    assert static["entryPoints"]["ping"]["address"].startswith("127.0.0.1:")
    dockerfile = render_stack(project_in(tmp_path, BASE)).files["Dockerfile"]
    assert "\nUSER app\n" in dockerfile


def test_no_migration_service_without_a_command(tmp_path: Path) -> None:
    doc = compose(tmp_path)
    assert "migrate" not in doc["services"]
    assert doc["services"]["app"]["depends_on"] == {"files": {"condition": "service_completed_successfully"}}


def test_migration_runs_before_the_app_on_the_same_image(tmp_path: Path) -> None:
    doc = compose(
        tmp_path,
        BASE + "migrate: {command: alembic upgrade head}\napp: {module: app.main:app, volumes: {data: /data}}\n",
    )
    migrate, app = doc["services"]["migrate"], doc["services"]["app"]
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate["image"] == app["image"]
    assert migrate["restart"] == "no"
    assert migrate["volumes"] == [FILES_MOUNT, "data:/data"]
    assert app["depends_on"] == {
        "files": {"condition": "service_completed_successfully"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_limits_and_worker_settings(tmp_path: Path) -> None:
    doc = compose(
        tmp_path,
        BASE.replace(
            "{module: app.main:app}", "{module: app.main:app, cpus: 1.5, memory: 1G, workers: 3, max_workers: 8}"
        ),
    )
    app = doc["services"]["app"]
    assert app["deploy"]["resources"]["limits"] == {"cpus": "1.5", "memory": "1024m", "pids": 4096}
    assert app["environment"]["WEB_CONCURRENCY"] == "3"
    assert app["environment"]["MAX_WORKERS"] == "8"
    assert app["command"][:3] == ["gunicorn", "--config", "/etc/composekit/gunicorn.conf.py"]


def test_stop_grace_period_exceeds_graceful_timeout(tmp_path: Path) -> None:
    app = compose(tmp_path)["services"]["app"]
    assert int(app["stop_grace_period"].rstrip("s")) > int(app["environment"]["GRACEFUL_TIMEOUT"])


FILES_MOUNT = {
    "type": "volume",
    "source": "files",
    "target": "/etc/composekit",
    "read_only": True,
    "volume": {"nocopy": True},
}


def test_private_ca_travels_in_the_compose_file_and_is_trusted(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB$x\n-----END CERTIFICATE-----\n")
    doc = compose(
        tmp_path,
        BASE
        + "acme: {ca_server: 'https://host.docker.internal:14000/dir', ca_certificates: [ca.pem], challenge: tls}\n",
    )
    traefik = doc["services"]["traefik"]
    assert traefik["volumes"] == ["routes:/etc/traefik/dynamic:ro", "acme:/acme"]  # named volumes only
    assert {"source": "acme-ca-0.pem", "target": "/etc/composekit/acme-ca/0.pem"} in traefik["configs"]
    assert doc["configs"]["acme-ca-0.pem"] == {
        "content": "-----BEGIN CERTIFICATE-----\nMIIB$$x\n-----END CERTIFICATE-----\n"
    }
    assert traefik["environment"] == {"LEGO_CA_CERTIFICATES": "/etc/composekit/acme-ca/0.pem"}
    assert traefik["extra_hosts"] == ["host.docker.internal:host-gateway"]
    static = yaml.safe_load(render_stack(load_project((tmp_path / "composekit.yaml",))).configs["traefik.yml"])
    assert static["certificatesResolvers"]["composekit"]["acme"]["tlsChallenge"] == {}


def test_an_unreadable_ca_file_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(b"\xff\xfe not text")
    with pytest.raises(ConfigError) as caught:
        compose(tmp_path, BASE + "acme: {ca_certificates: [ca.pem]}\n")
    assert caught.value.problems == [
        f'composekit.yaml: acme/ca_certificates/0: cannot read "ca.pem" ({tmp_path}/ca.pem): not a PEM text file'
    ]


def test_own_dockerfile_is_used_and_none_generated(tmp_path: Path) -> None:
    stack = render_stack(project_in(tmp_path, BASE, {"Dockerfile": "FROM scratch\n"}))
    assert "Dockerfile" not in stack.files
    build = yaml.safe_load(stack.compose)["services"]["app"]["build"]
    assert build == {"context": "..", "dockerfile": "Dockerfile", "args": {"PYTHON_IMAGE": "python:3.13-slim"}}


def test_env_file_is_referenced_not_inlined(tmp_path: Path) -> None:
    stack = render_stack(
        project_in(
            tmp_path,
            BASE.replace("{module: app.main:app}", "{module: app.main:app, env_file: .env}"),
            {"requirements.txt": "x\n", ".env": "SECRET_KEY=hunter2\n"},
        )
    )
    assert "hunter2" not in "".join(stack.files.values())
    assert yaml.safe_load(stack.compose)["services"]["app"]["env_file"] == ["../.env"]
    assert ".env" in stack.files["Dockerfile.dockerignore"].splitlines()


@pytest.mark.parametrize(
    ("files", "config", "expected"),
    [
        (
            {},
            BASE,
            "composekit.yaml: app/path: {root} has no Dockerfile and no requirements.txt, poetry.lock, uv.lock "
            "or pyproject.toml listing dependencies to generate one from; add a Dockerfile or a "
            "requirements.txt (`composekit init` writes both)",
        ),
        (
            {"requirements.txt": ""},
            BASE.replace("{module: app.main:app}", "{module: app.main:app, path: api}"),
            "composekit.yaml: app/path: directory 'api' does not exist (looked for {root}/api)",
        ),
        (
            {"requirements.txt": ""},
            BASE.replace("{module: app.main:app}", "{module: app.main:app, dockerfile: docker/Dockerfile}"),
            "composekit.yaml: app/dockerfile: 'docker/Dockerfile' not found in {root}; fix the path, or remove the "
            "key to let composekit generate a Dockerfile",
        ),
        (
            {"requirements.txt": ""},
            BASE.replace("{module: app.main:app}", "{module: app.main:app, env_file: .env}"),
            "composekit.yaml: app/env_file: '.env' does not exist; create it (it holds the app's secrets, keep it "
            "out of git) or remove the key",
        ),
        (
            {"requirements.txt": ""},
            BASE + "acme: {ca_certificates: [missing.pem]}\n",
            "composekit.yaml: acme/ca_certificates/0: file 'missing.pem' does not exist",
        ),
        (
            {"requirements.txt": ""},
            BASE + "database: {name: shop, user: shop, password_file: secrets/pw}\n",
            "composekit.yaml: database/password_file: 'secrets/pw' does not exist; create it (`composekit init "
            "--template fastapi-postgres` writes one, or `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))' > secrets/pw`) and keep it out of git",
        ),
    ],
)
def test_project_file_errors(tmp_path: Path, files: dict[str, str], config: str, expected: str) -> None:
    from composekit.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        project_in(tmp_path, config, files)
    assert info.value.problems == [expected.format(root=tmp_path)]


def test_traefik_deletes_aliasing_headers_and_refuses_an_encoded_nul(tmp_path: Path) -> None:
    """Traefik 3.6+ logs a WARNING at every start while neither is configured (a healthy start logs none)."""
    from composekit.render.traefik import traefik_static

    entrypoints = traefik_static(project_in(tmp_path, BASE).config)["entryPoints"]
    assert {name: ep["http"]["aliasHeadersStrategy"] for name, ep in entrypoints.items()} == {
        "web": "delete",
        "websecure": "delete",
        "ping": "delete",
    }
    for name in ("web", "websecure"):
        assert entrypoints[name]["http"]["encodedCharacters"] == {"allowEncodedNullCharacter": False}


def test_traefiks_access_log_keeps_every_answer_the_apps_log_lacks_and_no_2xx(tmp_path: Path) -> None:
    """gunicorn logs every request it serves; Traefik's log (own Traefik, the shared edge in any slot, Swarm's) keeps
    every other answer, retried requests and slow ones, and no second line for a fast 2xx (benchmarks/https_hop.py)."""
    from composekit.render.edge import edge_static
    from composekit.render.traefik import traefik_static, traefik_swarm_static

    config = project_in(tmp_path, BASE).config
    logs = [
        traefik_static(config)["accessLog"],
        traefik_swarm_static(config, "tcp://socket-proxy:2375", "web")["accessLog"],
    ]
    logs += [edge_static(config, slot)["accessLog"] for slot in ("a", "b")]
    for log in logs:
        filters = log["filters"]
        assert (filters["retryAttempts"], filters["minDuration"]) == (True, "1s")
        ranges = [tuple(map(int, span.split("-"))) for span in filters["statusCodes"]]
        logged = {code for code in range(100, 600) if any(low <= code <= high for low, high in ranges)}
        assert logged == set(range(100, 600)) - set(range(200, 300))
