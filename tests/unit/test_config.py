"""Validation of composekit.yaml: every message asserted word for word."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from composekit.config import load_config, parse_config, parse_memory
from composekit.errors import ConfigError

MINIMAL = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def with_app(**app: object) -> dict[str, object]:
    return {**MINIMAL, "app": {"module": "app.main:app", **app}}


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.app.workers == "auto"
    assert config.app.port == 8000
    assert config.app.health_path == "/health"
    assert config.acme.directory_url == "https://acme-v02.api.letsencrypt.org/directory"
    assert config.acme.challenge == "http"
    assert config.images.python == "python:3.13-slim"
    assert config.images.traefik == "traefik:v3.7"
    assert (config.ports.http, config.ports.https) == (80, 443)
    assert config.migrate.command is None


def test_staging_alias_and_custom_ca() -> None:
    staging = parse_config({**MINIMAL, "acme": {"ca_server": "staging"}})
    assert staging.acme.directory_url == "https://acme-staging-v02.api.letsencrypt.org/directory"
    custom = parse_config({**MINIMAL, "acme": {"ca_server": "https://ca.internal:14000/dir"}})
    assert custom.acme.directory_url == "https://ca.internal:14000/dir"


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ({"workers": "many"}, 'composekit.yaml: app/workers: expected "auto" or a positive integer, got "many"'),
        ({"workers": 0}, 'composekit.yaml: app/workers: expected "auto" or a positive integer, got 0'),
        ({"port": 70000}, "composekit.yaml: app/port: expected a port number from 1 to 65535, got 70000"),
        ({"port": "80"}, 'composekit.yaml: app/port: expected a port number from 1 to 65535, got "80"'),
        (
            {"health_path": "health"},
            'composekit.yaml: app/health_path: expected a URL path starting with "/", of letters, digits and '
            '"-._~!$&\'()*+,;=:@/?%" (percent-encode any other character, such as a space: "%20"), got "health"',
        ),
        (
            {"module": "main"},
            'composekit.yaml: app/module: expected "package.module:attribute", such as "app.main:app", got "main"',
        ),
        ({"memory": "lots"}, 'composekit.yaml: app/memory: expected a size such as "512M" or "1G", got "lots"'),
        ({"cpus": -1}, "composekit.yaml: app/cpus: expected a positive number, got -1"),
        ({"max_workers": 1.5}, "composekit.yaml: app/max_workers: expected a positive integer, got 1.5"),
        (
            {"volumes": {"data": "data"}},
            "composekit.yaml: app/volumes: data: expected an absolute path inside the container, of letters, digits "
            'and "_.@+-" between "/", such as "/data", got "data"',
        ),
        (
            {"volumes": {"acme": "/x"}},
            'composekit.yaml: app/volumes: expected volume names of letters, digits, "_", "-", "." (not "acme", '
            '"routes" or "files"), got "acme"',
        ),
        (
            {"volumes": {"routes": "/x"}},
            'composekit.yaml: app/volumes: expected volume names of letters, digits, "_", "-", "." (not "acme", '
            '"routes" or "files"), got "routes"',
        ),
        (
            {"volumes": {"files": "/x"}},
            'composekit.yaml: app/volumes: expected volume names of letters, digits, "_", "-", "." (not "acme", '
            '"routes" or "files"), got "files"',
        ),
        (
            {"environment": {"DB_PASSWORD": "x"}},
            "composekit.yaml: app/environment: DB_PASSWORD looks like a secret (its name ends in PASSWORD); put it "
            "in app/env_file, so it never lands in the rendered files or `composekit config`",
        ),
        (
            {"bogus": 1},
            "composekit.yaml: app/bogus: unknown key (expected one of: path, workdir, dockerfile, module, port, "
            "health_path, workers, workers_per_core, max_workers, worker_memory, cpus, memory, env_file, environment, "
            "secrets, volumes, read_only, pids_limit, cap_add, replicas, placement)",
        ),
    ],
)
def test_app_errors(app: dict[str, object], message: str) -> None:
    assert problems(with_app(**app)) == [message]


def test_top_level_errors_all_at_once() -> None:
    found = problems(
        {"name": "My Shop", "domain": "localhost", "app": {"workers": "many"}, "acme": {"challenge": "dns"}, "extra": 1}
    )
    assert found == [
        'composekit.yaml: name: expected lowercase letters, digits, "-" and "_", starting with a letter or digit, '
        'got "My Shop"',
        'composekit.yaml: domain: expected a fully qualified lowercase domain name such as "shop.example.com", got '
        '"localhost"',
        'composekit.yaml: acme/challenge: expected "http" or "tls", got "dns"',
        "composekit.yaml: app/module: required key is missing",
        'composekit.yaml: app/workers: expected "auto" or a positive integer, got "many"',
        "composekit.yaml: extra: unknown key (expected one of: name, domain, acme, app, migrate, database, images, "
        "ports, smoke, logging, network, releases, backups, processes, accessories, schedules, host, mode, swarm, "
        "registry, www, edge)",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**MINIMAL, "acme": {"ca_server": "http://insecure/dir"}},
            'composekit.yaml: acme/ca_server: expected "production", "staging" or an https:// ACME directory URL, '
            'got "http://insecure/dir"',
        ),
        (
            {**MINIMAL, "acme": {"email": "nobody"}},
            'composekit.yaml: acme/email: expected an email address, got "nobody"',
        ),
        (
            {**MINIMAL, "ports": {"http": 8080, "https": 8080}},
            "composekit.yaml: ports: http and https must be different ports, got 8080 for both",
        ),
        (
            {**MINIMAL, "migrate": {"command": ""}},
            'composekit.yaml: migrate/command: expected a command line or a list of arguments, got ""',
        ),
        (
            {**MINIMAL, "images": {"python": "not an image"}},
            'composekit.yaml: images/python: expected an image reference such as "python:3.13-slim", got "not an '
            'image"',
        ),
        ({**MINIMAL, "app": "app.main:app"}, 'composekit.yaml: app: expected a mapping, got "app.main:app"'),
        (["name"], "composekit.yaml: expected a mapping of keys at the top level, got ['name']"),
    ],
)
def test_other_errors(data: object, message: str) -> None:
    assert problems(data) == [message]


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "composekit.yaml")
    assert info.value.problems == [
        f"{tmp_path / 'composekit.yaml'}: not found; run `composekit init` in your app's repository to create one, "
        f"or pass --config FILE"
    ]


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "composekit.yaml"
    path.write_text("name: shop\napp: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: invalid YAML at line 3, column 1: expected the node content, but found '<stream end>'"
    ]


def test_files_merge_in_order(tmp_path: Path) -> None:
    base = tmp_path / "composekit.yaml"
    base.write_text(
        "name: shop\ndomain: shop.example.com\napp: {module: app.main:app, port: 8000}\nacme: {email: a@example.com}\n"
    )
    local = tmp_path / "local.yaml"
    local.write_text("app: {port: 9000}\nacme: {ca_server: staging}\n")
    config = load_config(base, local)
    assert config.app.port == 9000
    assert config.app.module == "app.main:app"
    assert config.acme.email == "a@example.com"
    assert config.acme.ca_server == "staging"


def test_merged_errors_name_both_files(tmp_path: Path) -> None:
    base = tmp_path / "composekit.yaml"
    base.write_text("name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n")
    local = tmp_path / "local.yaml"
    local.write_text("app: {workers: many}\n")
    with pytest.raises(ConfigError) as info:
        load_config(base, local)
    assert info.value.problems == [
        'composekit.yaml + local.yaml: app/workers: expected "auto" or a positive integer, got "many"'
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 * 1024**2), ("1g", 1024**3), ("256MiB", 256 * 1024**2), (1000, 1000), ("1.5G", int(1.5 * 1024**3))],
)
def test_parse_memory(text: object, expected: int) -> None:
    assert parse_memory(text) == expected


# Values that reach generated code (Python, sh, the Dockerfile) or a command line: refused at validation -------

URL_PATH = (
    'expected a URL path starting with "/", of letters, digits and "-._~!$&\'()*+,;=:@/?%" (percent-encode any '
    'other character, such as a space: "%20")'
)
VOLUME_PATH = (
    'expected an absolute path inside the container, of letters, digits and "_.@+-" between "/", such as "/data"'
)
QUOTES = "expected a command line whose quotes are closed ({}), or a list of arguments"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_app(health_path='/a"b'), f'app/health_path: {URL_PATH}, got "/a\\"b"'),
        (with_app(health_path="/a\\b"), f'app/health_path: {URL_PATH}, got "/a\\\\b"'),
        (with_app(health_path="/a`b"), f'app/health_path: {URL_PATH}, got "/a`b"'),
        (with_app(health_path="/caf\u00e9"), f'app/health_path: {URL_PATH}, got "/caf\\u00e9"'),
        (with_app(health_path="/a#b"), f'app/health_path: {URL_PATH}, got "/a#b"'),
        (with_app(health_path="/a{b}"), f'app/health_path: {URL_PATH}, got "/a{{b}}"'),
        (
            {**MINIMAL, "smoke": {"checks": [{"path": "/x\ny"}]}},
            f'smoke/checks/0/path: {URL_PATH}, got "/x\\ny"',
        ),
        (
            with_app(volumes={"data": "/data dir;touch${IFS}x"}),
            f'app/volumes: data: {VOLUME_PATH}, got "/data dir;touch${{IFS}}x"',
        ),
        (with_app(volumes={"data": "/data:ro"}), f'app/volumes: data: {VOLUME_PATH}, got "/data:ro"'),
        (with_app(volumes={"data": "/a/../etc"}), f'app/volumes: data: {VOLUME_PATH}, got "/a/../etc"'),
        (with_app(volumes={"data": "/data/"}), f'app/volumes: data: {VOLUME_PATH}, got "/data/"'),
        (with_app(volumes={"data": "/$HOME"}), f'app/volumes: data: {VOLUME_PATH}, got "/$HOME"'),
        (
            {**MINIMAL, "migrate": {"command": "python3 -c 'import app.migrate"}},
            f'migrate/command: {QUOTES.format("no closing quotation")}, got "python3 -c \'import app.migrate"',
        ),
        (
            {**MINIMAL, "migrate": {"command": "alembic upgrade head", "state_command": 'sh -c "alembic current'}},
            f'migrate/state_command: {QUOTES.format("no closing quotation")}, got "sh -c \\"alembic current"',
        ),
        (
            {**MINIMAL, "migrate": {"command": "alembic upgrade head\\"}},
            f'migrate/command: {QUOTES.format("no escaped character")}, got "alembic upgrade head\\\\"',
        ),
        (
            {**MINIMAL, "migrate": {"command": "''"}},
            "migrate/command: expected a command line or a list of arguments, got \"''\"",
        ),
        (
            {**MINIMAL, "migrate": {"command": ["", "x"]}},
            "migrate/command: expected a command line or a list of arguments, got ['', 'x']",
        ),
    ],
)
def test_values_that_would_break_generated_code_are_refused(data: dict[str, object], message: str) -> None:
    assert problems(data) == [f"composekit.yaml: {message}"]


@pytest.mark.parametrize("path", ["/it's", "/health?probe=1&x=$y", "/a/b;c=d", "/%20", "/~user/(x)*,+!@:"])
def test_url_paths_of_rfc_3986_characters_are_accepted(path: str) -> None:
    assert parse_config(with_app(health_path=path)).app.health_path == path


@pytest.mark.parametrize("target", ["/data", "/var/lib/app-data", "/srv/x_y.z", "/a@b+c"])
def test_plain_volume_paths_are_accepted(target: str) -> None:
    assert parse_config(with_app(volumes={"data": target})).app.volumes == {"data": target}


def test_command_lines_with_closed_quotes_are_accepted() -> None:
    migrate = parse_config({**MINIMAL, "migrate": {"command": "sh -c 'alembic upgrade head && echo \"ok\"'"}}).migrate
    assert migrate.command == "sh -c 'alembic upgrade head && echo \"ok\"'"


HOST = (
    "expected ssh://[user@]host[:port][/path/to/docker.sock], unix:///path/to/docker.sock, tcp://host:port or a "
    "Docker context name, with no spaces or control characters"
)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"name": "shop\n"}, 'name: expected lowercase letters, digits, "-" and "_", starting with a letter or digit'),
        (
            {"domain": "shop.example.com\n"},
            'domain: expected a fully qualified lowercase domain name such as "shop.example.com"',
        ),
        (
            {"host": "ssh://vps\n"},
            "host: expected ssh://[user@]host[:port][/path/to/docker.sock], with no spaces or control characters",
        ),
        ({"host": "ctx\n"}, f"host: {HOST}"),
        (
            {"app": {"module": "app.main:app\n"}},
            'app/module: expected "package.module:attribute", such as "app.main:app"',
        ),
        (
            {"app": {"module": "m:a", "environment": {"A\n": "x"}}},
            "app/environment: expected environment variable names",
        ),
        ({"images": {"python": "python:3\n"}}, 'images/python: expected an image reference such as "python:3.13-slim"'),
        ({"acme": {"email": "ops@example.com\n"}}, "acme/email: expected an email address"),
        (
            {"database": {"password_file": "pw", "name": "app\n"}},
            'database/name: expected lowercase letters, digits and "_", starting with a letter or "_"',
        ),
    ],
)
def test_a_trailing_newline_is_refused(section: dict[str, object], message: str) -> None:
    """Python's "$" matches before a final newline: each of these passed and reached the rendered files."""
    with_newline = re.findall(r"'([^']*\\n)'", repr(section))  # the one string of the section that ends in "\n"
    assert len(with_newline) == 1
    got = json.dumps(with_newline[0].replace("\\n", "\n"))
    assert problems({**MINIMAL, **section}) == [f"composekit.yaml: {message}, got {got}"]
