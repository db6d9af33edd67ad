"""app/secrets and database/variables: secrets the app reads from environment variables, delivered as secrets and
put into the process environment by runtime/secret_env.py, never into a rendered file, the container's
configuration (`environment:`) or `composekit config`. The live guarantee (docker inspect, image layers, logs, over
ssh://) is tests/integration/test_secrets_env.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app as cli
from composekit.config import parse_config
from composekit.config.project import Project, load_project
from composekit.engine import steps
from composekit.errors import ConfigError
from composekit.render.stack import render_stack
from composekit.render.swarm_variables import deploy_variables

from .fake_clock import fake_deadline
from .test_migration_state import StateEngine

RUNTIME = Path(__file__).resolve().parents[2] / "composekit" / "runtime" / "secret_env.py"
MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
# Fixed test values, not credentials of anything; the password holds characters a URL must percent-encode.
SECRET_KEY = "k3y-Zq8tLrW0xKp7yNc2VbM9sJd4$Hf6"
PASSWORD = "p@ss/w:rd %é?#"
DATABASE = {"password_file": "secrets/db_password"}
FORMS: dict[str, dict[str, Any]] = {
    "app_secret": {"app": {"module": "app.main:app", "secrets": {"SECRET_KEY": "secrets/secret_key"}}},
    "database_url": {"database": {**DATABASE, "variables": "database_url", "url_scheme": "postgresql+asyncpg"}},
    "postgres": {"database": {**DATABASE, "variables": "postgres"}},
}


def project(tmp_path: Path, extra: dict[str, Any], env_file: str | None = None) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "secret_key").write_text(SECRET_KEY + "\n")
    (tmp_path / "secrets" / "db_password").write_text(PASSWORD + "\n")
    if env_file is not None:
        (tmp_path / "app.env").write_text(env_file)
    config = {**MINIMAL, "migrate": {"command": "alembic upgrade head"}, **extra}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    return info.value.problems


def values_in(text: str) -> list[str]:
    """Which secret values (or the password's percent-encoded form) ``text`` holds."""
    return [v for v in (SECRET_KEY, PASSWORD, "p%40ss%2Fw%3Ard") if v in text]


# validation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"app": {"module": "a:b", "secrets": ["SECRET_KEY"]}},
            "app/secrets: expected a mapping of VARIABLE: path of the file that holds its value, got ['SECRET_KEY']",
        ),
        (
            {"app": {"module": "a:b", "secrets": {"1KEY": "k"}}},
            'app/secrets: expected environment variable names, got "1KEY"',
        ),
        (
            {"app": {"module": "a:b", "secrets": {"APP_PORT": "k"}}},
            "app/secrets: APP_PORT is composekit's own variable: set app/port instead",
        ),
        (
            {"app": {"module": "a:b", "secrets": {"SECRET_KEY": " "}}},
            "app/secrets: SECRET_KEY: expected the path of a file that holds the value, such as secrets/secret_key, "
            'got " "',
        ),
        (
            {"app": {"module": "a:b", "secrets": {"SENTRY_DSN": "s"}, "environment": {"SENTRY_DSN": "x"}}},
            "app: secrets: SENTRY_DSN is also set in app/environment; keep one of the two (a secret belongs in "
            "app/secrets only)",
        ),
        (
            {
                "app": {"module": "a:b", "secrets": {"POSTGRES_PASSWORD": "p"}},
                "database": {**DATABASE, "variables": "postgres"},
            },
            "app/secrets: POSTGRES_PASSWORD is composekit's own variable when database is set: set "
            "database/password_file instead",
        ),
        (
            {
                "app": {"module": "a:b", "secrets": {"DATABASE_URL": "u"}},
                "database": {**DATABASE, "variables": "database_url"},
            },
            "app/secrets: DATABASE_URL is composekit's own variable when database is set: composekit builds it from "
            "database/ (the password from database/password_file); set database/url_scheme for another driver",
        ),
        (
            {
                "app": {"module": "a:b", "environment": {"POSTGRES_SERVER": "x"}},
                "database": {**DATABASE, "variables": "postgres"},
            },
            "app/environment: POSTGRES_SERVER is composekit's own variable when database is set: composekit points it "
            "at the database service; it cannot be changed",
        ),
        (
            {"database": {**DATABASE, "url_scheme": "postgresql+asyncpg"}},
            "database: url_scheme: applies to variables: database_url only; set `variables: database_url` or remove "
            "the key",
        ),
        (
            {"database": {**DATABASE, "variables": "database_url", "url_scheme": "mysql"}},
            'database/url_scheme: expected "postgresql" or "postgres", optionally with a driver such as '
            '"postgresql+asyncpg", got "mysql"',
        ),
    ],
)
def test_secrets_and_database_variables_are_validated_with_their_path(extra: dict[str, Any], message: str) -> None:
    assert problems({**MINIMAL, **extra}) == [f"composekit.yaml: {message}"]


def test_database_variables_names_its_choices() -> None:
    found = problems({**MINIMAL, "database": {**DATABASE, "variables": "url"}})
    assert len(found) == 1 and found[0].startswith("composekit.yaml: database/variables: ")
    assert all(choice in found[0] for choice in ('"composekit"', '"database_url"', '"postgres"'))


def test_the_database_variables_of_another_set_stay_free() -> None:
    """With variables: postgres, DATABASE_HOST is the app's own again (and POSTGRES_* with the default)."""
    parse_config(
        {
            **MINIMAL,
            "app": {"module": "a:b", "environment": {"DATABASE_HOST": "x"}},
            "database": {**DATABASE, "variables": "postgres"},
        }
    )
    parse_config({**MINIMAL, "app": {"module": "a:b", "environment": {"POSTGRES_SERVER": "x"}}, "database": DATABASE})


def test_a_missing_secret_file_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {**MINIMAL, "app": {"module": "a:b", "secrets": {"SECRET_KEY": "secrets/secret_key"}}}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        load_project((tmp_path / "composekit.yaml",))
    assert info.value.problems == [
        "composekit.yaml: app/secrets/SECRET_KEY: 'secrets/secret_key' does not exist; create it (it holds the value "
        "of SECRET_KEY alone, such as `python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "
        "secrets/secret_key`) and keep it out of git"
    ]


@pytest.mark.parametrize(
    ("form", "line", "message"),
    [
        ("app_secret", "SECRET_KEY=old\n", "app/secrets/SECRET_KEY: SECRET_KEY is also set in app.env (line 2)"),
        (
            "postgres",
            "POSTGRES_PASSWORD=old\n",
            "database/variables: POSTGRES_PASSWORD is also set in app.env (line 2)",
        ),
        ("database_url", "DATABASE_URL=old\n", "database/variables: DATABASE_URL is also set in app.env (line 2)"),
    ],
)
def test_an_env_file_line_that_sets_the_same_variable_is_refused(
    tmp_path: Path, form: str, line: str, message: str
) -> None:
    extra = json.loads(json.dumps(FORMS[form]))
    extra.setdefault("app", {"module": "app.main:app"})["env_file"] = "app.env"
    with pytest.raises(ConfigError) as info:
        project(tmp_path, extra, env_file="# the app's settings\n" + line)
    assert info.value.problems == [
        f"composekit.yaml: {message}; composekit sets it, so remove the line from the env file"
    ]


def test_the_default_database_variables_leave_env_files_alone(tmp_path: Path) -> None:
    """Unchanged behaviour: POSTGRES_PASSWORD in an env file is the app's business with variables: composekit."""
    project(tmp_path, {"app": {"module": "a:b", "env_file": "app.env"}, "database": DATABASE}, "POSTGRES_PASSWORD=x\n")


# rendering -----------------------------------------------------------------------------------------------------


WRAPPER = ["python3", "-I", "-B", "/etc/composekit/secret_env.py"]
EXPECTED_ARGS = {
    "app_secret": ["--env", "SECRET_KEY", "{dir}/env_SECRET_KEY"],
    "database_url": [
        "--url",
        "DATABASE_URL",
        "postgresql+asyncpg://app:{{password}}@db:5432/app",
        "{dir}/db_password",
    ],
    "postgres": ["--env", "POSTGRES_PASSWORD", "{dir}/db_password"],
}
PLAIN_ENV = {
    "app_secret": {},
    "database_url": {},
    "postgres": {"POSTGRES_SERVER": "db", "POSTGRES_PORT": "5432", "POSTGRES_DB": "app", "POSTGRES_USER": "app"},
}


def wrapped(form: str, directory: str, argv: list[str]) -> list[str]:
    return [*WRAPPER, *(a.format(dir=directory) for a in EXPECTED_ARGS[form]), "--", *argv]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_compose_delivers_each_form_as_a_secret_and_renders_no_value(tmp_path: Path, form: str) -> None:
    rendered = render_stack(project(tmp_path, FORMS[form]))
    for path, text in rendered.files.items():
        assert values_in(text) == [], path
    doc = yaml.safe_load(rendered.compose)
    app, migrate, files = doc["services"]["app"], doc["services"]["migrate"], doc["services"]["files"]
    assert app["command"] == wrapped(
        form, "/etc/composekit", ["gunicorn", "--config", "/etc/composekit/gunicorn.conf.py", "app.main:app"]
    )
    assert migrate["command"] == wrapped(form, "/etc/composekit", ["alembic", "upgrade", "head"])
    names = {"SECRET_KEY", "DATABASE_URL", "POSTGRES_PASSWORD", "DATABASE_PASSWORD_FILE"}
    for service in (app, migrate):
        environment = service.get("environment", {})
        assert names.isdisjoint(environment)
        assert {k: environment[k] for k in PLAIN_ENV[form]} == PLAIN_ENV[form]
        assert "secrets" not in service  # read-only: through the files volume
    secret = "env_SECRET_KEY" if form == "app_secret" else "db_password"
    variable = "COMPOSEKIT_SECRET_SECRET_KEY" if form == "app_secret" else "COMPOSEKIT_DB_PASSWORD"
    assert doc["secrets"][secret] == {"environment": variable}
    assert files["secrets"] == [secret]
    assert files["command"][-2:] == ["/etc/composekit/secret_env.py", f"/run/secrets/{secret}"]
    assert {"source": "secret_env.py", "target": "/etc/composekit/secret_env.py"} in files["configs"]
    assert doc["configs"]["secret_env.py"]["content"] == RUNTIME.read_text()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_swarm_delivers_each_form_as_a_docker_secret_and_renders_no_value(tmp_path: Path, form: str) -> None:
    extra = {**FORMS[form], "mode": "swarm"}
    p = project(tmp_path, extra)
    rendered = render_stack(p)
    for path, text in rendered.files.items():
        assert values_in(text) == [], path
    stack, migrate_doc = yaml.safe_load(rendered.files["stack.yml"]), yaml.safe_load(rendered.files["migrate.yml"])
    app, migrate = stack["services"]["app"], migrate_doc["services"]["migrate"]
    assert app["command"][: len(WRAPPER)] == WRAPPER
    assert migrate["command"] == wrapped(form, "/run/secrets", ["alembic", "upgrade", "head"])
    secret = "env_SECRET_KEY" if form == "app_secret" else "db_password"
    version = "COMPOSEKIT_SECRET_SECRET_KEY_VERSION" if form == "app_secret" else "COMPOSEKIT_DB_SECRET_VERSION"
    for doc, service in ((stack, app), (migrate_doc, migrate)):
        assert secret in service["secrets"]
        assert {"source": "secret-env-py", "target": "/etc/composekit/secret_env.py"} in service["configs"]
        assert doc["secrets"][secret]["file"].endswith(
            f"secrets/{'secret_key' if form == 'app_secret' else 'db_password'}"
        )
        assert f"${{{version}:?" in doc["secrets"][secret]["name"]
        assert {"SECRET_KEY", "DATABASE_URL", "POSTGRES_PASSWORD", "DATABASE_PASSWORD_FILE"}.isdisjoint(
            service["environment"]
        )
    assert rendered.files["swarm/secret_env.py"] == RUNTIME.read_text()
    variables = deploy_variables(p, "r1")
    assert len(variables[version]) == 12 and values_in(json.dumps(variables)) == []


def test_a_swarm_secret_name_longer_than_swarm_allows_is_refused_before_deploying(tmp_path: Path) -> None:
    variable = "LONG_" + "X" * 38  # shop_env_<43 characters>-<12 hex digits>: 65 characters
    app = {"module": "app.main:app", "secrets": {variable: "secrets/secret_key"}}
    p = project(tmp_path, {"app": app, "mode": "swarm"})
    with pytest.raises(ConfigError) as info:
        render_stack(p)
    assert info.value.problems == [
        f"composekit.yaml: app/secrets/{variable}: in mode: swarm its Docker secret is named "
        f"shop_env_{variable}-<version>, 65 characters, and Swarm allows 64: shorten name or the variable's name"
    ]
    app["secrets"] = {variable[1:]: "secrets/secret_key"}  # 64: accepted
    render_stack(project(tmp_path, {"app": app, "mode": "swarm"}))


def test_without_secrets_nothing_is_wrapped(tmp_path: Path) -> None:
    """The default database variables need no wrapper: the app reads DATABASE_PASSWORD_FILE itself."""
    rendered = render_stack(project(tmp_path, {"database": DATABASE}))
    doc = yaml.safe_load(rendered.compose)
    assert doc["services"]["app"]["command"][0] == "gunicorn"
    assert "secret_env.py" not in doc["configs"] and "secret_env.py" not in rendered.configs
    assert doc["services"]["app"]["environment"]["DATABASE_PASSWORD_FILE"] == "/etc/composekit/db_password"


def test_a_secret_file_in_the_build_context_stays_out_of_the_image(tmp_path: Path) -> None:
    rendered = render_stack(project(tmp_path, FORMS["app_secret"]))
    assert "secrets/secret_key" in rendered.files["Dockerfile.dockerignore"].splitlines()


def test_compose_gets_each_value_from_its_file_and_their_version(tmp_path: Path) -> None:
    extra = {**FORMS["app_secret"], "database": DATABASE}
    p = project(tmp_path, extra)
    got = steps.compose_secrets(p)
    version = got.pop("COMPOSEKIT_SECRETS_VERSION")
    assert got == {"COMPOSEKIT_DB_PASSWORD": PASSWORD + "\n", "COMPOSEKIT_SECRET_SECRET_KEY": SECRET_KEY + "\n"}
    assert len(version) == 12 and values_in(version) == []
    assert steps.compose_secrets(p)["COMPOSEKIT_SECRETS_VERSION"] == version  # same values, same version
    (tmp_path / "secrets" / "secret_key").write_text("rotated\n")
    assert steps.compose_secrets(p)["COMPOSEKIT_SECRETS_VERSION"] != version
    # The database password with the default variables is a file the app reads itself: no version to follow.
    assert "COMPOSEKIT_SECRETS_VERSION" not in steps.compose_secrets(project(tmp_path, {"database": DATABASE}))


def test_a_changed_value_changes_the_apps_config_hash(tmp_path: Path) -> None:
    """The version reaches the app as a label through Compose's interpolation (the one "$" left unescaped), so
    `docker compose config --hash app` changes with it and `up` switches to a container that reads the new value."""
    doc = yaml.safe_load(render_stack(project(tmp_path, FORMS["postgres"])).compose)
    assert doc["services"]["app"]["labels"]["composekit.secrets-version"] == "${COMPOSEKIT_SECRETS_VERSION:-}"
    assert (
        "composekit.secrets-version"
        not in yaml.safe_load(render_stack(project(tmp_path, {})).compose)["services"]["app"]["labels"]
    )


def test_the_state_command_runs_with_the_secrets(tmp_path: Path) -> None:
    engine = StateEngine(0, ("0002 (head)\n", ""))
    steps.read_migration_state(project(tmp_path, FORMS["postgres"]), engine, fake_deadline(30), lambda _: None)  # type: ignore[arg-type]
    assert engine.calls[0] == (
        "run",
        "migrate",
        wrapped("postgres", "/etc/composekit", ["alembic", "current"]),
        "shop-migrate-state",
    )


def test_composekit_config_shows_the_paths_and_no_value(tmp_path: Path) -> None:
    extra = {**FORMS["app_secret"], "database": {**DATABASE, "variables": "database_url"}}
    project(tmp_path, extra)
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "composekit.yaml"), "config"])
    assert result.exit_code == 0, result.output
    assert values_in(result.output) == []
    assert '"SECRET_KEY": "secrets/secret_key"' in result.output
    assert '"password_file": "secrets/db_password"' in result.output


# runtime/secret_env.py -----------------------------------------------------------------------------------------


def run_wrapper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-B", str(RUNTIME), *args], capture_output=True, text=True, timeout=30, env=env
    )


SHOW = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('SECRET_KEY', 'DATABASE_URL', 'KEPT')}))"


def test_the_wrapper_puts_the_values_into_the_commands_environment(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(SECRET_KEY + "\n\n")
    (tmp_path / "pw").write_bytes((PASSWORD + "\n").encode())
    env = {**os.environ, "KEPT": "yes", "SECRET_KEY": "from the env file"}
    result = run_wrapper(
        "--env", "SECRET_KEY", str(tmp_path / "key"),
        "--url", "DATABASE_URL", "postgresql+asyncpg://app:{password}@db:5432/app", str(tmp_path / "pw"),
        "--", sys.executable, "-c", SHOW,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": "postgresql+asyncpg://app:p%40ss%2Fw%3Ard%20%25%C3%A9%3F%23@db:5432/app",
        "KEPT": "yes",
    }


def test_the_wrapper_drops_trailing_newlines_only_as_the_postgres_image_does(tmp_path: Path) -> None:
    """The official image reads POSTGRES_PASSWORD_FILE with $(<file): trailing newlines go, a "\r" stays; the
    password the app gets must be the one the database was initialised with."""
    (tmp_path / "key").write_bytes(b" x\r\n\n")
    result = run_wrapper("--env", "SECRET_KEY", str(tmp_path / "key"), "--", sys.executable, "-c", SHOW)
    assert json.loads(result.stdout)["SECRET_KEY"] == " x\r"


def test_the_wrapper_replaces_itself_with_the_command(tmp_path: Path) -> None:
    """Same PID: the app's gunicorn stays PID 1 and gets the container's signals directly."""
    (tmp_path / "key").write_text("x")
    argv = [sys.executable, "-I", "-B", str(RUNTIME), "--env", "K", str(tmp_path / "key"), "--", "sh", "-c", "echo $$"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert int(out) == process.pid


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--env", "K", "/nonexistent/k", "--", "true"],
            "secret_env: K: cannot read /nonexistent/k: No such file or directory",
        ),
        (
            ["--env", "K"],
            "secret_env: usage: secret_env.py [--env NAME FILE]... [--url NAME TEMPLATE FILE]... -- COMMAND [ARG]...",
        ),
        (["--url", "U", "postgresql://db", "{file}", "--", "true"], "secret_env: U: the template holds no {password}"),
        (
            ["--env", "K", "{file}", "--", "/nonexistent/cmd"],
            "secret_env: cannot run /nonexistent/cmd: No such file or directory",
        ),
    ],
)
def test_the_wrapper_says_what_it_cannot_do_and_never_a_value(tmp_path: Path, args: list[str], error: str) -> None:
    (tmp_path / "k").write_text(SECRET_KEY)
    result = run_wrapper(*(a.replace("{file}", str(tmp_path / "k")) for a in args))
    assert result.returncode == 2
    assert result.stderr == error + "\n"
    assert SECRET_KEY not in result.stderr + result.stdout
