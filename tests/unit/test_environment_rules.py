"""app/environment: what it refuses (secrets by name or value, composekit's own variables), what it accepts,
how worker settings in app/env_file are honoured or refused, and what `composekit config` shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app as cli
from composekit.config import APP_VARIABLES, DATABASE_VARIABLES, REDACTED, WORKER_VARIABLES, parse_config
from composekit.config.project import load_project
from composekit.errors import ConfigError
from composekit.render.compose import compose_mode
from composekit.render.names import APP_SERVICE
from composekit.render.services import app_environment, app_services
from composekit.render.stack import render_stack
from composekit.render.swarm_app import swarm_mode

MINIMAL = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
USE_ENV_FILE = "put it in app/env_file, so it never lands in the rendered files or `composekit config`"
# Fixed test values, made with secrets.token_hex(16) / token_urlsafe(32): not credentials of anything.
HEX_TOKEN = "3f9a1c07e4b25d68a0c1f7e93b4d2a56"
URLSAFE_TOKEN = "q8Zt3LrW0xKp7yNc2VbM9sJd4Hf6Ge1Ua5Ti0Ro_Xw"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


def problems(environment: dict[str, object], **top: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, **top, "app": {"module": "app.main:app", "environment": environment}})
    return info.value.problems


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("DB_PASSWORD", "PASSWORD"),
        ("SMTP_PASS", "PASS"),
        ("GITHUB_TOKEN", "TOKEN"),
        ("JWT_SECRET", "SECRET"),
        ("SECRET_KEY", "SECRET_KEY"),
        ("STRIPE_API_KEY", "API_KEY"),
        ("AWS_ACCESS_KEY", "ACCESS_KEY"),
        ("GOOGLE_CREDENTIALS", "CREDENTIALS"),
        ("gpg_passphrase", "PASSPHRASE"),
    ],
)
def test_secret_names_are_refused(name: str, word: str) -> None:
    assert problems({name: "x"}) == [
        f"composekit.yaml: app/environment: {name} looks like a secret (its name ends in {word}); {USE_ENV_FILE}"
    ]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("postgres://app:hunter2@db:5432/app", "is a URL with credentials (user:password@)"),
        ("redis://:hunter2@cache:6379/0", "is a URL with credentials (user:password@)"),
        ("https://3f9a1c07e4b25d68@o1.ingest.example.com/42", "is a URL with credentials (user:password@)"),
        (HEX_TOKEN, "looks like a random token"),
        (URLSAFE_TOKEN, "looks like a random token"),
        (JWT, "looks like a random token"),
        (PEM, "holds a PEM block"),
    ],
)
def test_secret_values_are_refused_without_echoing_them(value: str, why: str) -> None:
    found = problems({"DATABASE_URL": value})
    assert found == [f"composekit.yaml: app/environment: DATABASE_URL: the value {why}; {USE_ENV_FILE}"]
    assert value not in found[0]


HARMLESS = {
    "PASSWORD_MIN_LENGTH": "12",
    "TOKEN_TTL": "3600",
    "SECRET_FILE": "/run/secrets/app_secret",
    "TOKEN_PATH": "/run/secrets/token",
    "AUTH_TOKEN_URL": "https://auth.example.com/oauth/token",
    "DATABASE_URL": "postgres://db:5432/app",
    "SQLITE_URL": "sqlite:////data/app.db",
    "CACHE_KEY": "v2",
    "PRIMARY_KEY": "id",
    "LOG_LEVEL": "info",
    "LANG": "en_US.UTF-8",
    "REGION_HOST": "api.eu-west-1.example.com",
    "BUILD_TAG": "release_2024_11_30_build",
    "SERVICE_NAME": "MyApplicationServiceName2",
    "TENANT_ID": "6f1c2b8e-4d3a-4f7b-9e2c-1a5d8b0c3e7f",
    "UPLOAD_DIR": "/data/uploads/2024/a1b2c3d4e5f6a7b8",
    "FEATURE_ON": True,
    "PAGE_SIZE": 50,
}


def test_harmless_names_and_values_are_accepted() -> None:
    config = parse_config({**MINIMAL, "app": {"module": "app.main:app", "environment": HARMLESS}})
    assert config.app.environment["PASSWORD_MIN_LENGTH"] == "12"
    assert config.app.environment["FEATURE_ON"] == "true"
    assert set(config.app.environment) == set(HARMLESS)


@pytest.mark.parametrize(
    ("name", "instead"),
    [
        ("APP_PORT", "set app/port instead"),
        ("GRACEFUL_TIMEOUT", "composekit sets it to match the container's stop grace period; it cannot be changed"),
        ("WORKERS_PER_CORE", "set app/workers_per_core instead"),
        ("WORKER_MEMORY_MB", "set app/worker_memory instead"),
        ("MAX_WORKERS", "set app/max_workers instead"),
        ("WEB_CONCURRENCY", "set app/workers instead"),
        ("FORWARDED_ALLOW_IPS", "composekit limits it to Traefik's network; it cannot be changed"),
    ],
)
def test_composekit_variables_are_refused_naming_the_key(name: str, instead: str) -> None:
    assert problems({name: "1"}) == [
        f"composekit.yaml: app/environment: {name} is composekit's own variable: {instead}"
    ]


def test_database_variables_are_refused_only_with_a_database() -> None:
    database = {"password_file": "secrets/db_password"}
    assert problems({"DATABASE_NAME": "other"}, database=database) == [
        "composekit.yaml: app/environment: DATABASE_NAME is composekit's own variable when database is set: "
        "set database/name instead"
    ]
    assert problems({"DATABASE_HOST": "elsewhere"}, database=database) == [
        "composekit.yaml: app/environment: DATABASE_HOST is composekit's own variable when database is set: "
        "composekit points it at the database service; it cannot be changed"
    ]
    # An app with its own external database may name its variables so.
    app = {"module": "app.main:app", "environment": {"DATABASE_HOST": "pg.internal"}}
    external = parse_config({**MINIMAL, "app": app})
    assert external.app.environment == {"DATABASE_HOST": "pg.internal"}


def project_in(tmp_path: Path, app: dict[str, object], env_file: str | None = None, **top: object):  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    if env_file is not None:
        (tmp_path / "app.env").write_text(env_file)
        app = {**app, "env_file": "app.env"}
    config = {**MINIMAL, **top, "app": {"module": "app.main:app", **app}}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


def test_render_sets_exactly_the_shared_list_of_composekit_variables(tmp_path: Path) -> None:
    """render.py and the validation share config.APP_VARIABLES / DATABASE_VARIABLES: nothing rendered escapes them."""
    everything = {"workers": 3, "workers_per_core": 2, "max_workers": 8, "worker_memory": "128M"}
    project = project_in(tmp_path, everything, database={"password_file": "app.env"}, env_file="")
    env = app_environment(project.config, compose_mode(project.config))
    assert set(env) <= set(APP_VARIABLES) | set(DATABASE_VARIABLES)
    swarm_only = {"DRAIN_SECONDS"}
    assert set(env) >= set(APP_VARIABLES) - {"FORWARDED_ALLOW_IPS"} - swarm_only | set(DATABASE_VARIABLES)
    # mode: swarm with app/workers: gunicorn's drain before its graceful stop, also composekit's own.
    swarm = project_in(tmp_path, everything, database={"password_file": "app.env"}, env_file="", mode="swarm")
    swarm_env = app_services(swarm, swarm_mode(swarm.config))[APP_SERVICE].environment
    assert swarm_only <= set(swarm_env) <= set(APP_VARIABLES) | set(DATABASE_VARIABLES) | {"DATABASE_PASSWORD_FILE"}


def test_worker_settings_left_at_their_defaults_are_not_rendered(tmp_path: Path) -> None:
    """So an env file's WORKERS_PER_CORE=3 applies: Compose gives environment: precedence over env_file:."""
    project = project_in(
        tmp_path,
        {"cpus": 1},
        env_file="# the old official image's convention\nWORKERS_PER_CORE=3\n"
        "export MAX_WORKERS=6\nWEB_CONCURRENCY = 4\nWORKER_MEMORY_MB=128\n",
    )
    app = yaml.safe_load(render_stack(project).compose)["services"]["app"]
    assert app["environment"]["APP_PORT"] == "8000"
    assert not set(WORKER_VARIABLES) & set(app["environment"])
    assert app["env_file"] == ["../app.env"]


def test_worker_settings_the_config_sets_are_rendered(tmp_path: Path) -> None:
    project = project_in(tmp_path, {"workers_per_core": 1, "worker_memory": "256M", "workers": 2, "max_workers": 4})
    env = app_environment(project.config, compose_mode(project.config))
    assert {k: env[k] for k in WORKER_VARIABLES} == {
        "WORKERS_PER_CORE": "1",
        "WORKER_MEMORY_MB": "256",
        "MAX_WORKERS": "4",
        "WEB_CONCURRENCY": "2",
    }
    # `workers: auto` set explicitly still renders no WEB_CONCURRENCY: auto is gunicorn.conf.py's own sizing.
    auto = project_in(tmp_path, {"workers": "auto"}).config
    assert "WEB_CONCURRENCY" not in app_environment(auto, compose_mode(auto))


def test_a_worker_setting_in_both_the_env_file_and_the_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        project_in(
            tmp_path,
            {"workers_per_core": 2, "workers": "auto", "max_workers": 8},
            env_file="LOG_LEVEL=info\nWORKERS_PER_CORE=3\n\nexport WEB_CONCURRENCY=4\n",
        )
    assert info.value.problems == [
        "composekit.yaml: app/workers_per_core: WORKERS_PER_CORE is also set in app.env (line 2); keep one of the "
        "two: remove app/workers_per_core to use the env file's value, or the line to use the config's",
        "composekit.yaml: app/workers: WEB_CONCURRENCY is also set in app.env (line 4); keep one of the "
        "two: remove app/workers to use the env file's value, or the line to use the config's",
    ]


def test_config_command_redacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets cannot enter app/environment, and anything credential-like elsewhere shows as <redacted>."""
    project_in(
        tmp_path,
        {"environment": {"LOG_LEVEL": "info"}},
        env_file="SECRET_KEY=hunter2-in-env-file\n",
        acme={"ca_server": "https://acme:s3cret@ca.internal/dir"},
        database={"password_file": "app.env"},
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["acme"]["ca_server"] == REDACTED
    assert data["app"]["environment"] == {"LOG_LEVEL": "info"}
    assert data["database"]["password_file"] == "app.env"
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout
