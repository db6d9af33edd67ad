"""Rendering the database section, the fastapi-postgres template's golden files, and `render --check`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app as cli_app
from composekit.config.project import load_project
from composekit.render.stack import MANIFEST_FILE, check_stack, render_stack, write_stack
from composekit.render.text import CONFIG_HEADER

from .golden import assert_matches_golden

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "stacks" / "fastapi-postgres" / "composekit.yaml"
BASE = "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n"
DATABASE = "database: {name: shop, user: shop_app, password_file: secrets/db_password}\n"
runner = CliRunner()


def project_in(tmp_path: Path, config: str = BASE + DATABASE):  # type: ignore[no-untyped-def]
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "db_password").write_text("hunter2-not-in-files\n")
    (tmp_path / "composekit.yaml").write_text(config)
    return load_project((tmp_path / "composekit.yaml",))


def compose(tmp_path: Path, config: str = BASE + DATABASE) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(render_stack(project_in(tmp_path, config)).compose)  # type: ignore[no-any-return]


# the database section ---------------------------------------------------------------------------


def test_template_matches_golden_files(tmp_path: Path) -> None:
    copy = tmp_path / "fastapi-postgres"
    shutil.copytree(TEMPLATE.parent, copy)
    (copy / "secrets").mkdir()
    (copy / "secrets" / "db_password").write_text("not-in-any-rendered-file\n")
    stack = render_stack(load_project((copy / TEMPLATE.name,)))
    assert "not-in-any-rendered-file" not in "".join(stack.files.values())
    assert_matches_golden(stack, "fastapi-postgres")


def test_db_service_follows_the_official_image_interface(tmp_path: Path) -> None:
    db = compose(tmp_path)["services"]["db"]
    assert db["image"] == "postgres:17"
    assert db["environment"] == {
        "POSTGRES_DB": "shop",
        "POSTGRES_USER": "shop_app",
        "POSTGRES_PASSWORD_FILE": "/run/secrets/db_password",
    }
    assert db["secrets"] == ["db_password"]
    assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]
    assert db["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "--host",
        "127.0.0.1",
        "--port",
        "5432",
        "--username",
        "shop_app",
        "--dbname",
        "shop",
    ]
    assert db["restart"] == "always"
    assert "ports" not in db  # never published on the host


def test_start_order_db_healthy_then_migration_then_app(tmp_path: Path) -> None:
    doc = compose(tmp_path, BASE + DATABASE + "migrate: {command: alembic upgrade head}\n")
    services = doc["services"]
    assert list(services) == ["traefik", "routes", "files", "db", "migrate", "app"]
    assert services["migrate"]["depends_on"] == {
        "files": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
    }
    assert services["app"]["depends_on"] == {
        "files": {"condition": "service_completed_successfully"},
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_app_and_migration_get_the_connection_settings_and_the_secret(tmp_path: Path) -> None:
    services = compose(tmp_path, BASE + DATABASE + "migrate: {command: alembic upgrade head}\n")["services"]
    expected = {
        "DATABASE_HOST": "db",
        "DATABASE_PORT": "5432",
        "DATABASE_NAME": "shop",
        "DATABASE_USER": "shop_app",
        "DATABASE_PASSWORD_FILE": "/etc/composekit/db_password",
    }
    files_mount = {
        "type": "volume",
        "source": "files",
        "target": "/etc/composekit",
        "read_only": True,
        "volume": {"nocopy": True},
    }
    for name in ("app", "migrate"):
        assert expected.items() <= services[name]["environment"].items()
        # Compose delivers no secret into a read-only container: the `files` service copies it into their volume.
        assert "secrets" not in services[name]
        assert services[name]["volumes"][0] == files_mount
        assert services[name]["networks"] == ["web", "db"]
    files = services["files"]
    assert files["secrets"] == ["db_password"]
    assert files["command"][-2:] == ["/etc/composekit/gunicorn.conf.py", "/run/secrets/db_password"]
    assert files["volumes"] == ["files:/files"]
    assert (files["network_mode"], files["cap_drop"], files["user"]) == ("none", ["ALL"], "0:0")


def test_password_is_a_secret_from_the_compose_process_environment_never_a_value(tmp_path: Path) -> None:
    stack = render_stack(project_in(tmp_path))
    doc = yaml.safe_load(stack.compose)
    assert doc["secrets"] == {"db_password": {"environment": "COMPOSEKIT_DB_PASSWORD"}}
    assert not any("hunter2" in content for content in [*stack.files.values(), *stack.configs.values()])
    assert "secrets/db_password" in stack.files["Dockerfile.dockerignore"].splitlines()


def test_database_network_is_internal_and_traefik_stays_off_it(tmp_path: Path) -> None:
    doc = compose(tmp_path)
    assert list(doc["networks"]) == ["web", "db"]
    assert doc["networks"]["db"] == {"internal": True}
    assert list(doc["services"]["traefik"]["networks"]) == ["web"]
    assert doc["services"]["db"]["networks"] == ["db"]
    assert doc["volumes"] == {"acme": {}, "routes": {}, "files": {}, "db-data": {}}


def test_no_database_no_db_service(tmp_path: Path) -> None:
    doc = compose(tmp_path, BASE)
    assert "db" not in doc["services"] and "secrets" not in doc
    assert doc["services"]["app"]["networks"] == ["web"]


def test_postgres_image_is_configurable(tmp_path: Path) -> None:
    doc = compose(tmp_path, BASE + DATABASE + "images: {postgres: 'registry.example.com/postgres:16'}\n")
    assert doc["services"]["db"]["image"] == "registry.example.com/postgres:16"


# render --check ---------------------------------------------------------------------------------


def rendered(tmp_path: Path):  # type: ignore[no-untyped-def]
    project = project_in(tmp_path)
    write_stack(project)
    return project


def test_check_passes_when_unchanged(tmp_path: Path) -> None:
    assert check_stack(rendered(tmp_path)) == ""


def test_check_catches_a_changed_config(tmp_path: Path) -> None:
    rendered(tmp_path)
    (tmp_path / "composekit.yaml").write_text(
        BASE.replace("{module: app.main:app}", "{module: app.main:app, workers: 4}") + DATABASE
    )
    diff = check_stack(load_project((tmp_path / "composekit.yaml",)))
    assert diff.startswith("--- .composekit/compose.yaml (on disk)\n+++ .composekit/compose.yaml (rendered)\n@@")
    assert "\n+      WEB_CONCURRENCY: '4'\n" in diff


def test_check_catches_a_hand_edited_file(tmp_path: Path) -> None:
    project = rendered(tmp_path)
    path = project.out_dir / "compose.yaml"
    path.write_text(path.read_text().replace("level: INFO", "level: DEBUG"))
    diff = check_stack(project)
    assert "-        level: DEBUG\n+        level: INFO\n" in diff
    assert diff.count("+++ ") == 1


def test_check_catches_missing_and_stale_files(tmp_path: Path) -> None:
    project = rendered(tmp_path)
    (project.out_dir / "compose.yaml").unlink()
    (project.out_dir / "traefik.yml").write_text(CONFIG_HEADER + "bind-mounted by an older composekit\n")
    (project.out_dir / "traefik-dynamic.yml").write_text("the user's own file\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")  # the app now has its own: the generated one is stale
    (tmp_path / ".dockerignore").write_text("secrets/\n")  # with its own Dockerfile the app keeps secrets out itself
    diff = check_stack(load_project((tmp_path / "composekit.yaml",)))
    assert "--- /dev/null\n+++ .composekit/compose.yaml (rendered)\n" in diff
    assert "--- .composekit/Dockerfile (on disk)\n+++ /dev/null\n" in diff
    assert (
        ".composekit/traefik.yml (on disk)" not in diff
    )  # not in the manifest: the manifest decides, a header does not
    (project.out_dir / MANIFEST_FILE).unlink()  # as rendered by a composekit before the manifest
    diff = check_stack(load_project((tmp_path / "composekit.yaml",)))
    assert "--- .composekit/traefik.yml (on disk)\n+++ /dev/null\n" in diff  # it carries composekit's header
    assert "--- .composekit/Dockerfile (on disk)\n+++ /dev/null\n" in diff
    assert ".composekit/traefik-dynamic.yml (on disk)" not in diff  # no header: the user's


def test_cli_check_exit_codes_diff_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered(tmp_path)
    monkeypatch.chdir(tmp_path)
    ok = runner.invoke(cli_app, ["render", "--check"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == ""
    (tmp_path / ".composekit" / "compose.yaml").write_text("edited by hand\n")
    stale = runner.invoke(cli_app, ["-c", "composekit.yaml", "render", "--check"])
    assert stale.exit_code == 1
    assert stale.stdout.startswith("--- .composekit/compose.yaml (on disk)\n")
    assert "-edited by hand\n" in stale.stdout
    assert stale.stderr == (
        f"error: render --check: the files in {tmp_path / '.composekit'} differ from what "
        f"{tmp_path / 'composekit.yaml'} renders (diff above); run `composekit -c composekit.yaml render` "
        "and commit the result\n"
    )
    fixed = runner.invoke(cli_app, ["-c", "composekit.yaml", "render"])
    assert fixed.exit_code == 0
    assert runner.invoke(cli_app, ["render", "--check"]).exit_code == 0


def test_cli_check_with_an_output_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project_in(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli_app, ["render", "--out", "deploy"]).exit_code == 0
    assert runner.invoke(cli_app, ["render", "--check", "--out", "deploy"]).exit_code == 0
    missing = runner.invoke(cli_app, ["render", "--check", "--out", "elsewhere"])
    assert missing.exit_code == 1
    assert "run `composekit render --out elsewhere` and commit the result" in missing.stderr
    dash = runner.invoke(cli_app, ["render", "--check", "--out", "-"])
    assert dash.exit_code == 1
    assert (
        dash.stderr
        == "error: render: --check compares the files in an output directory; it cannot be used with --out -\n"
    )
