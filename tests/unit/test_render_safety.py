"""What the render guarantees for safety: literal values, secrets out of the build context, log rotation
and confinement of every service. Every message asserted word for word."""

from __future__ import annotations

import http.server
import json
import re
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config import parse_config
from composekit.config.project import Project, load_project
from composekit.config.sources import DependencyStyle
from composekit.errors import ConfigError
from composekit.render.compose import render_compose
from composekit.render.dockerfile import (
    _NO_HOME as NO_HOME,
)
from composekit.render.dockerfile import (
    DOCKERIGNORE,
    GUNICORN_CONF_PATH,
    dockerignore,
    dockerignore_excludes,
    render_dockerfile,
)
from composekit.render.services import http_probe
from composekit.render.stack import render_stack
from composekit.render.traefik import host_rule, rule_string

from .probe_code import probe_url
from .shell_words import sh_commands

BASE = "name: shop\ndomain: shop.example.com\n"
MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


def project_in(tmp_path: Path, config: str, files: dict[str, str] | None = None) -> Project:
    for rel, content in {"requirements.txt": "fastapi\n", **(files or {})}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    (tmp_path / "composekit.yaml").write_text(config)
    return load_project((tmp_path / "composekit.yaml",))


def compose_of(project: Project) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(render_stack(project).compose)
    return doc


def compose(tmp_path: Path, config: str, files: dict[str, str] | None = None) -> dict[str, Any]:
    return compose_of(project_in(tmp_path, config, files))


def lone_dollars(value: Any) -> list[str]:
    """Strings of a loaded compose document that Compose would interpolate: a run of "$" of odd length."""
    if isinstance(value, str):
        return [value] if any(len(run) % 2 for run in re.findall(r"\$+", value)) else []
    if isinstance(value, dict):
        return [s for item in value.values() for s in lone_dollars(item)]
    if isinstance(value, list):
        return [s for item in value for s in lone_dollars(item)]
    return []


# "$" reaches the container literally ------------------------------------------------------------


def test_environment_values_are_escaped_in_app_and_migrate(tmp_path: Path) -> None:
    doc = compose(
        tmp_path,
        BASE + "app: {module: app.main:app, environment: {GREETING: 'price is ${HOME} or $5'}}\n"
        "migrate: {command: python3 -m app.migrate}\n",
    )
    for service in ("app", "migrate"):
        assert doc["services"][service]["environment"]["GREETING"] == "price is $${HOME} or $$5"


def test_migrate_command_is_escaped_as_a_string_and_as_a_list(tmp_path: Path) -> None:
    doc = compose(tmp_path, BASE + "app: {module: app.main:app}\nmigrate: {command: \"sh -c 'echo $PATH'\"}\n")
    assert doc["services"]["migrate"]["command"] == ["sh", "-c", "echo $$PATH"]
    doc = compose(tmp_path, BASE + "app: {module: app.main:app}\nmigrate: {command: [sh, -c, 'echo ${PATH:-x} $$']}\n")
    assert doc["services"]["migrate"]["command"] == ["sh", "-c", "echo $${PATH:-x} $$$$"]


def test_healthcheck_command_is_escaped(tmp_path: Path) -> None:
    doc = compose(tmp_path, BASE + "app: {module: app.main:app, health_path: '/health?v=$x'}\n")
    assert "'/health?v=$$x'.encode()" in doc["services"]["app"]["healthcheck"]["test"][-1]


def test_the_app_has_no_traefik_labels_the_routes_file_carries_the_router(tmp_path: Path) -> None:
    """Traefik has no Docker provider: labels would be dead weight, and "$" in them would need escaping."""
    project = project_in(tmp_path, BASE + "app: {module: app.main:app}\n")
    labels = compose_of(project)["services"]["app"]["labels"]
    assert list(labels) == ["composekit.config-hash"]  # recreated when gunicorn.conf.py changes; no traefik.*


def test_paths_are_escaped(tmp_path: Path) -> None:
    files = {"sr$c/requirements.txt": "fastapi\n", "conf$/prod.env": "A=1\n", "secret$/pw": "x\n", "c$a.pem": "p$m"}
    doc = compose(
        tmp_path,
        BASE + "app: {module: app.main:app, path: sr$c, env_file: conf$/prod.env, volumes: {data: /data}}\n"
        "migrate: {command: python3 -m app.migrate}\n"
        "database: {password_file: secret$/pw}\n"
        "acme: {ca_certificates: [c$a.pem]}\n",
        files,
    )
    app, migrate = doc["services"]["app"], doc["services"]["migrate"]
    assert app["build"]["context"] == "../sr$$c"
    assert app["env_file"] == migrate["env_file"] == ["../conf$$/prod.env"]
    assert "data:/data" in app["volumes"] and migrate["volumes"][1:] == ["data:/data"]  # "$" is refused there
    assert doc["secrets"]["db_password"] == {"environment": "COMPOSEKIT_DB_PASSWORD"}  # the path is not in it
    assert doc["configs"]["acme-ca-0.pem"] == {"content": "p$$m"}  # the CA file's content travels, escaped
    assert lone_dollars(doc) == []


def test_every_string_of_the_compose_document_is_escaped_and_nothing_else(tmp_path: Path) -> None:
    project = project_in(
        tmp_path,
        BASE + "app: {module: app.main:app, health_path: /$h, environment: {A: $a, B: '$$b'}}\n"
        "migrate: {command: [echo, $m]}\nacme: {ca_server: 'https://ca.example/dir?$q'}\n",
    )
    stack = render_stack(project)
    raw = render_compose(project, stack.configs)
    loaded = yaml.safe_load(stack.compose)
    assert lone_dollars(loaded) == []
    assert loaded["services"]["app"]["environment"]["B"] == "$$$$b"
    assert loaded["name"] == raw["name"] and list(loaded["services"]) == list(raw["services"])  # keys untouched
    # traefik.yml is read by Traefik, not interpolated by Compose: it keeps the value as configured.
    assert yaml.safe_load(stack.configs["traefik.yml"])["certificatesResolvers"]["composekit"]["acme"]["caServer"] == (
        "https://ca.example/dir?$q"
    )
    # inside compose.yaml it is escaped once, and Compose's interpolation gives Traefik the configured value
    assert "caServer: https://ca.example/dir?$$q" in loaded["configs"]["traefik.yml"]["content"]


# env and secret files stay out of the build context ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".env", True),
        (".env.production", True),
        ("prod.env", True),
        ("config/prod.env", True),
        ("deep/er/.env", True),
        ("deep/.env.local", True),
        (".git/config", True),
        (".composekit/compose.yaml", True),
        ("app/__pycache__/main.cpython-311.pyc", True),
        ("acme.json", True),
        ("app/main.py", False),
        ("requirements.txt", False),
        ("environment.py", False),
        ("app/envelope.txt", False),
    ],
)
def test_generated_dockerignore(path: str, excluded: bool) -> None:
    assert dockerignore_excludes(DOCKERIGNORE, path) is excluded


@pytest.mark.parametrize(
    ("lines", "path", "excluded"),
    [
        ("secrets\n", "secrets/db_password", True),  # a directory excludes what it holds
        ("/secrets/\n", "secrets/db_password", True),
        ("secrets/*\n!secrets/db_password\n", "secrets/db_password", False),  # the last match decides
        ("!secrets/db_password\nsecrets\n", "secrets/db_password", True),
        ("*.env\n", "config/prod.env", False),  # "*" stays within one directory
        ("*/*.env\n", "config/prod.env", True),
        ("**\n", "a/b/c", True),
        ("# config/prod.env\n", "config/prod.env", False),
        ("  config/prod.env  \n", "config/prod.env", True),
        ("config/prod.en?\n", "config/prod.env", True),
        ("config/[a-p]rod.env\n", "config/prod.env", True),
        ("./config/../config/prod.env\n", "config/prod.env", True),
        ("", "config/prod.env", False),
    ],
)
def test_dockerignore_matching_follows_buildkit(lines: str, path: str, excluded: bool) -> None:
    assert dockerignore_excludes(lines, path) is excluded


def test_rendered_dockerignore_lists_the_configured_secret_files(tmp_path: Path) -> None:
    files = {"config/app.secrets": "A=1\n", "keys/db": "pw\n"}
    project = project_in(
        tmp_path,
        BASE + "app: {module: app.main:app, env_file: config/app.secrets}\ndatabase: {password_file: keys/db}\n",
        files,
    )
    ignore = render_stack(project).files["Dockerfile.dockerignore"]
    assert ignore == dockerignore(["config/app.secrets", "keys/db"])
    assert dockerignore_excludes(ignore, "config/app.secrets") and dockerignore_excludes(ignore, "keys/db")


def test_secret_files_outside_the_build_context_are_not_listed(tmp_path: Path) -> None:
    files = {"api/requirements.txt": "fastapi\n", "config/app.secrets": "A=1\n"}
    config = BASE + "app: {module: app.main:app, path: api, env_file: config/app.secrets}\n"
    project = project_in(tmp_path, config, files)
    assert render_stack(project).files["Dockerfile.dockerignore"] == DOCKERIGNORE


def test_secret_file_names_with_pattern_characters_are_escaped(tmp_path: Path) -> None:
    files = {"conf/[prod]*.secrets": "A=1\n", "#pw": "x\n", "!other": "y\n"}
    project = project_in(
        tmp_path,
        BASE + "app: {module: app.main:app, env_file: 'conf/[prod]*.secrets'}\ndatabase: {password_file: '#pw'}\n",
        files,
    )
    ignore = render_stack(project).files["Dockerfile.dockerignore"]
    assert ignore.endswith("conf/\\[prod\\]\\*.secrets\n\\#pw\n")
    assert dockerignore_excludes(ignore, "conf/[prod]*.secrets") and dockerignore_excludes(ignore, "#pw")
    assert not dockerignore_excludes(ignore, "conf/p.secrets")


OWN = {"Dockerfile": "FROM scratch\nCOPY . /app\n", "config/app.secrets": "A=1\n", "secrets/db": "pw\n"}
OWN_CONFIG = BASE + "app: {module: app.main:app, env_file: config/app.secrets}\ndatabase: {password_file: secrets/db}\n"


def test_own_dockerfile_without_dockerignore_is_refused(tmp_path: Path) -> None:
    project = project_in(tmp_path, OWN_CONFIG, OWN)
    with pytest.raises(ConfigError) as info:
        render_stack(project)
    ignore = tmp_path / ".dockerignore"
    assert info.value.problems == [
        'composekit.yaml: app/env_file: "config/app.secrets" is in the build context of your Dockerfile and there is '
        f'no {ignore}, so the image would contain it; create it with the line "config/app.secrets"',
        'composekit.yaml: database/password_file: "secrets/db" is in the build context of your Dockerfile and there '
        f'is no {ignore}, so the image would contain it; create it with the line "secrets/db"',
    ]


def test_own_dockerignore_that_misses_a_secret_file_is_refused(tmp_path: Path) -> None:
    project = project_in(tmp_path, OWN_CONFIG, {**OWN, ".dockerignore": "secrets/\n*.secrets\n"})
    with pytest.raises(ConfigError) as info:
        render_stack(project)
    ignore = tmp_path / ".dockerignore"
    assert info.value.problems == [
        'composekit.yaml: app/env_file: "config/app.secrets" is in the build context of your Dockerfile and '
        f'{ignore} does not exclude it, so the image would contain it; add the line "config/app.secrets" to {ignore}',
    ]


def test_own_dockerignore_that_excludes_the_secret_files_is_accepted(tmp_path: Path) -> None:
    project = project_in(tmp_path, OWN_CONFIG, {**OWN, ".dockerignore": "secrets/\nconfig/app.secrets\n"})
    assert "Dockerfile" not in render_stack(project).files


def test_dockerfile_specific_ignore_file_takes_precedence(tmp_path: Path) -> None:
    """BuildKit reads <Dockerfile>.dockerignore instead of the context's .dockerignore when it exists."""
    files = {
        **OWN,
        "docker/app.Dockerfile": "FROM scratch\n",
        ".dockerignore": "secrets/\nconfig/\n",
        "docker/app.Dockerfile.dockerignore": "secrets/\n",
    }
    project = project_in(tmp_path, OWN_CONFIG.replace("app: {", "app: {dockerfile: docker/app.Dockerfile, "), files)
    with pytest.raises(ConfigError) as info:
        render_stack(project)
    assert [p.split(":")[1].strip() for p in info.value.problems] == ["app/env_file"]
    assert str(tmp_path / "docker/app.Dockerfile.dockerignore") in info.value.problems[0]


def test_own_dockerfile_with_secret_files_outside_the_context_is_accepted(tmp_path: Path) -> None:
    files = {"api/Dockerfile": "FROM scratch\n", "api/requirements.txt": "", "config/app.secrets": "A=1\n"}
    config = BASE + "app: {module: app.main:app, path: api, env_file: config/app.secrets}\n"
    project = project_in(tmp_path, config, files)
    assert render_stack(project).compose


# log rotation and confinement --------------------------------------------------------------------

DEFAULT_LOGGING = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
FULL = (
    BASE + "app: {module: app.main:app, volumes: {data: /data}}\nmigrate: {command: python3 -m app.migrate}\n"
    "database: {password_file: secrets/db}\n"
)


def test_every_service_rotates_its_logs_by_default(tmp_path: Path) -> None:
    services = compose(tmp_path, FULL, {"secrets/db": "pw\n"})["services"]
    assert sorted(services) == ["app", "db", "files", "migrate", "routes", "traefik"]
    assert {name: s["logging"] for name, s in services.items()} == dict.fromkeys(services, DEFAULT_LOGGING)


def test_logging_is_configurable(tmp_path: Path) -> None:
    config = FULL + "logging: {driver: local, max_size: 512K, max_file: 5}\n"
    services = compose(tmp_path, config, {"secrets/db": "pw\n"})["services"]
    expected = {"driver": "local", "options": {"max-size": "512k", "max-file": "5"}}
    assert all(s["logging"] == expected for s in services.values())
    services = compose(tmp_path, FULL + "logging: {max_size: 1536}\n", {"secrets/db": "pw\n"})["services"]
    assert services["app"]["logging"]["options"]["max-size"] == "1536"


def test_app_and_migration_are_confined(tmp_path: Path) -> None:
    services = compose(tmp_path, FULL, {"secrets/db": "pw\n"})["services"]
    for name in ("app", "migrate"):
        service = services[name]
        assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
        assert service["deploy"]["resources"]["limits"]["pids"] == 4096
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert "pids_limit" not in service  # Compose refuses it next to deploy.resources.limits


def test_confinement_is_relaxable(tmp_path: Path) -> None:
    config = FULL.replace(
        "volumes: {data: /data}",
        "volumes: {data: /data}, read_only: false, pids_limit: 200, cap_add: [CAP_chown, NET_BIND_SERVICE, CHOWN]",
    )
    services = compose(tmp_path, config, {"secrets/db": "pw\n"})["services"]
    for name in ("app", "migrate"):
        service = services[name]
        assert "read_only" not in service and "tmpfs" not in service
        assert service["cap_drop"] == ["ALL"] and service["cap_add"] == ["CHOWN", "NET_BIND_SERVICE"]
        assert service["deploy"]["resources"]["limits"]["pids"] == 200


def test_traefik_keeps_only_the_capability_to_bind_low_ports(tmp_path: Path) -> None:
    traefik = compose(tmp_path, BASE + "app: {module: app.main:app}\n")["services"]["traefik"]
    assert traefik["cap_drop"] == ["ALL"] and traefik["cap_add"] == ["NET_BIND_SERVICE"]
    assert traefik["security_opt"] == ["no-new-privileges:true"]


def test_database_keeps_the_capabilities_its_entrypoint_needs(tmp_path: Path) -> None:
    db = compose(tmp_path, FULL, {"secrets/db": "pw\n"})["services"]["db"]
    assert "cap_drop" not in db and "read_only" not in db
    assert db["security_opt"] == ["no-new-privileges:true"]
    assert db["logging"] == DEFAULT_LOGGING


SIZE = 'expected a size from 1K to 1G, such as "10m", got'
CAPS = "expected Linux capability names such as CHOWN or NET_BIND_SERVICE, got"
PIDS = "expected an integer from 16 to 4194304, got"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"logging": {"driver": "syslog"}}, 'logging/driver: expected "json-file" or "local", got "syslog"'),
        ({"logging": {"max_size": "lots"}}, f'logging/max_size: {SIZE} "lots"'),
        ({"logging": {"max_size": 100}}, f"logging/max_size: {SIZE} 100"),
        ({"logging": {"max_size": "2G"}}, f'logging/max_size: {SIZE} "2G"'),
        ({"logging": {"max_size": float("nan")}}, f"logging/max_size: {SIZE} NaN"),
        ({"logging": {"max_file": 0}}, "logging/max_file: expected an integer from 1 to 100, got 0"),
        ({"logging": {"max_file": "3"}}, 'logging/max_file: expected an integer from 1 to 100, got "3"'),
        ({"logging": {"rotate": True}}, "logging/rotate: unknown key (expected one of: driver, max_size, max_file)"),
        ({"app": {"read_only": "no"}}, 'app/read_only: expected true or false, got "no"'),
        ({"app": {"pids_limit": 8}}, f"app/pids_limit: {PIDS} 8"),
        ({"app": {"pids_limit": True}}, f"app/pids_limit: {PIDS} true"),
        (
            {"app": {"cap_add": "CHOWN"}},
            'app/cap_add: expected a list of Linux capability names such as [CHOWN], got "CHOWN"',
        ),
        ({"app": {"cap_add": ["ALL"]}}, f'app/cap_add: {CAPS} "ALL"'),
        ({"app": {"cap_add": [1]}}, f"app/cap_add: {CAPS} 1"),
    ],
)
def test_new_key_errors(section: dict[str, Any], message: str) -> None:
    data = {**MINIMAL, **section}
    data["app"] = {**MINIMAL["app"], **section.get("app", {})}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [f"composekit.yaml: {message}"]


def test_new_key_defaults() -> None:
    config = parse_config(MINIMAL)
    assert (config.logging.driver, config.logging.max_size, config.logging.max_file) == ("json-file", 10 * 1024**2, 3)
    assert (config.app.read_only, config.app.pids_limit, config.app.cap_add) == (True, 4096, ())


# Config values in generated code: quoted for the language they land in ---------------------------------


@pytest.mark.parametrize("mode", ["compose", "swarm"])
@pytest.mark.parametrize("path", ["/it's", "/a'b\"", "/x?q='$y'&z=1"])
def test_the_healthcheck_requests_the_health_path_exactly(tmp_path: Path, mode: str, path: str) -> None:
    """health_path "/it's" rendered Python that did not compile: the app never turned healthy."""
    if '"' in path:  # not a URL character: refused (test_config.py); the quoting holds all the same
        code = http_probe(8000, path)[-1]
    else:
        config = BASE + f"mode: {mode}\napp: {{module: app.main:app, health_path: {json.dumps(path)}}}\n"
        stack = render_stack(project_in(tmp_path, config))
        doc = yaml.safe_load(stack.main)
        test = doc["services"]["app"]["healthcheck"]["test"]
        assert test[:5] == ["CMD", "python3", "-I", "-S", "-c"]
        code = test[5].replace("$$", "$")  # as Compose and `docker stack deploy` interpolate it
        if mode == "swarm":
            labels = doc["services"]["app"]["deploy"]["labels"]
            assert labels["traefik.http.services.shop.loadbalancer.healthcheck.path"].replace("$$", "$") == path
    assert probe_url(code) == f"http://127.0.0.1:8000{path}"


def _run_lines(dockerfile: str) -> list[str]:
    """The scripts of the Dockerfile's RUN instructions, continuation lines joined, mount options dropped."""
    scripts = []
    for instruction in dockerfile.replace("\\\n", " ").splitlines():
        if instruction.startswith("RUN "):
            words = instruction.removeprefix("RUN ").split(" ")
            scripts.append(" ".join(w for w in words if not w.startswith("--mount=")).strip())
    return scripts


def test_a_volume_path_with_shell_characters_is_refused_and_would_be_one_word(tmp_path: Path) -> None:
    """`/data dir;touch${IFS}x` went unquoted into `RUN mkdir -p`: sh ran touch."""
    hostile = "/data dir;touch${IFS}x"
    with pytest.raises(ConfigError) as info:
        project_in(tmp_path, BASE + f"app: {{module: app.main:app, volumes: {{data: '{hostile}'}}}}\n")
    assert info.value.problems == [
        f"{tmp_path / 'composekit.yaml'}: app/volumes: data: expected an absolute path inside the container, of "
        'letters, digits and "_.@+-" between "/", such as "/data", got "/data dir;touch${IFS}x"'
    ]
    # The Dockerfile quotes each path all the same: one word for sh, and `sh -n` parses the script.
    dockerfile = render_dockerfile(
        DependencyStyle.PIP,
        python_image="python:3.13-slim",
        module="app.main:app",
        port=8000,
        volume_paths=[hostile, "/srv/b"],
    )
    (script,) = [s for s in _run_lines(dockerfile) if "mkdir" in s]
    assert sh_commands(script) == [
        ["groupadd", "--system", "--gid", "10001", "app"],
        ["useradd", "--system", "--uid", "10001", "--gid", "app", *NO_HOME.split(), "app"],
        ["mkdir", "-p", hostile, "/srv/b"],
        ["chown", "app:app", hostile, "/srv/b"],
    ]
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_the_dockerfile_cmd_is_json_whatever_the_module(tmp_path: Path) -> None:
    dockerfile = render_dockerfile(
        DependencyStyle.PIP, python_image="python:3.13-slim", module='a"b\\c:app', port=8000, volume_paths=[]
    )
    (cmd,) = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["gunicorn", "--config", GUNICORN_CONF_PATH, 'a"b\\c:app']


def test_traefik_rule_strings_hold_any_value() -> None:
    """Inside backticks nothing escapes a backtick: such a value becomes a double-quoted Go string."""
    assert host_rule("shop.example.com") == "Host(`shop.example.com`)"
    assert rule_string("a`b") == '"a`b"'
    assert rule_string('a"b\\c') == '`a"b\\c`'


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1), (307, 1)])
def test_the_healthcheck_command_requests_the_path_from_a_server(status: int, exit_code: int) -> None:
    """Run the rendered probe command (`python3 -I -S -c CODE`) against a local server: it sends "/it's?a=$b" as it
    is and exits 0 on 200 only (a redirect is not followed, as Traefik's and smoke's health requests do not)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(status)
            if status == 307:
                self.send_header("Location", "/health/")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.handle_request, daemon=True)
        thread.start()
        argv = http_probe(server.server_address[1], "/it's?a=$b")
        assert argv[:2] == ["CMD", "python3"]
        done = subprocess.run([sys.executable, *argv[2:]], capture_output=True, timeout=30)
        thread.join(5)
    assert (done.returncode, seen) == (exit_code, ["/it's?a=$b"]), done.stderr


def test_the_healthcheck_command_fails_when_nothing_listens() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # a port nothing listens on (bound, not listening: connections are refused)
        argv = http_probe(taken.getsockname()[1], "/health")
        done = subprocess.run([sys.executable, *argv[2:]], capture_output=True, timeout=30)
    assert done.returncode != 0
