"""Release ids: the git commit; for a changed tree the commit, "-dirty" and a hash of the changes; a UTC timestamp
outside git. composekit's own output (the render) never makes a tree dirty."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from composekit.config.project import load_project
from composekit.engine.releases import Release, distinct_release_id
from composekit.engine.switch import project_release_id, release_id
from composekit.errors import ConfigError
from composekit.render.stack import render_stack, write_stack

NOW = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def committed(repo: Path, files: dict[str, str]) -> str:
    git(repo, "init", "-q")
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    return git(repo, "rev-parse", "--short=12", "HEAD")


APP = {
    "main.py": "VERSION = 1\n",
    "requirements.txt": "fastapi\n",
    "composekit.yaml": "name: shop\ndomain: shop.example.com\napp: {module: main:app}\n",
}


def test_outside_git_a_utc_timestamp(tmp_path: Path) -> None:
    assert release_id(tmp_path, now=lambda: NOW) == "20261130T030405Z"


def test_the_commit_then_dirty_with_a_hash_of_the_changes(tmp_path: Path) -> None:
    head = committed(tmp_path, {"main.py": "VERSION = 1\n"})
    assert release_id(tmp_path, now=lambda: NOW) == head
    (tmp_path / "main.py").write_text("VERSION = 2\n")
    two = release_id(tmp_path, now=lambda: NOW)
    assert re.fullmatch(rf"{head}-dirty-[0-9a-f]{{8}}", two), two
    assert release_id(tmp_path, now=lambda: NOW) == two  # the same changes: the same id (a rebuild keeps it)
    (tmp_path / "main.py").write_text("VERSION = 3\n")
    three = release_id(tmp_path, now=lambda: NOW)
    assert three.startswith(f"{head}-dirty-") and three != two  # other content: another id, never a shared tag
    (tmp_path / "main.py").write_text("VERSION = 2\n")
    assert release_id(tmp_path, now=lambda: NOW) == two


def test_an_untracked_or_deleted_file_changes_the_id(tmp_path: Path) -> None:
    head = committed(tmp_path, {"main.py": "VERSION = 1\n", "extra.py": "X = 1\n"})
    (tmp_path / "new.py").write_text("Y = 1\n")
    untracked = release_id(tmp_path)
    (tmp_path / "new.py").write_text("Y = 2\n")
    assert untracked.startswith(f"{head}-dirty-") and release_id(tmp_path) != untracked
    (tmp_path / "new.py").unlink()
    assert release_id(tmp_path) == head
    (tmp_path / "extra.py").unlink()
    assert release_id(tmp_path).startswith(f"{head}-dirty-")


def test_a_render_into_a_clean_checkout_keeps_the_commit(tmp_path: Path) -> None:
    head = committed(tmp_path, APP)
    project = load_project((tmp_path / "composekit.yaml",))
    write_stack(project)  # .composekit/ (compose.yaml, Dockerfile, manifest): untracked, not ignored
    assert (tmp_path / ".composekit" / "compose.yaml").is_file()
    assert git(tmp_path, "status", "--porcelain") != ""
    assert project_release_id(project) == head
    (tmp_path / "main.py").write_text("VERSION = 2\n")  # a real change still counts
    assert project_release_id(project).startswith(f"{head}-dirty-")


def test_a_render_into_the_apps_own_directory_keeps_the_commit(tmp_path: Path) -> None:
    head = committed(tmp_path, APP)
    project = load_project((tmp_path / "composekit.yaml",), out_dir=tmp_path)
    write_stack(project)  # compose.yaml, Dockerfile, ... beside the app's own files
    assert (tmp_path / "compose.yaml").is_file()
    assert project_release_id(project) == head
    (tmp_path / "notes.txt").write_text("mine\n")  # the user's new file is a change
    assert project_release_id(project).startswith(f"{head}-dirty-")


def test_an_app_in_a_subdirectory_counts_only_its_own_changes(tmp_path: Path) -> None:
    head = committed(tmp_path, {f"app/{name}": content for name, content in APP.items()} | {"docs/a.md": "a\n"})
    (tmp_path / "docs" / "a.md").write_text("b\n")  # outside the app's directory
    assert release_id(tmp_path / "app") == head
    (tmp_path / "app" / "main.py").write_text("VERSION = 2\n")
    assert release_id(tmp_path / "app").startswith(f"{head}-dirty-")


def recorded(id: str, image: str) -> Release:
    return Release(id, image, "2026-11-29T10:00:00Z", "h")


def test_an_id_recorded_for_another_image_gets_the_images_hash() -> None:
    """A clean commit rebuilt on a newer base image: the earlier release keeps its id, tag and place in the history."""
    history = [recorded("0123456789ab", "sha256:aaaa1111bbbb"), recorded("fedcba987654", "sha256:cccc")]
    assert distinct_release_id("0123456789ab", "sha256:aaaa1111bbbb", history) == "0123456789ab"  # the same image
    assert distinct_release_id("0123456789ab", "sha256:dddd2222eeee", history) == "0123456789ab-dddd2222"
    assert distinct_release_id("112233445566", "sha256:dddd2222eeee", history) == "112233445566"  # a new id


def test_a_config_that_does_not_render_still_gets_its_release_id(tmp_path: Path) -> None:
    """doctor asks for the release id of a config that may not render (here: its Dockerfile's build would contain
    the env file); the output directory is still excluded."""
    config = "name: shop\ndomain: shop.example.com\napp: {module: main:app, env_file: .env}\n"
    head = committed(tmp_path, {"Dockerfile": "FROM scratch\n", ".env": "A=1\n", "composekit.yaml": config})
    project = load_project((tmp_path / "composekit.yaml",))
    (tmp_path / ".composekit").mkdir()
    (tmp_path / ".composekit" / "compose.yaml").write_text("rendered earlier\n")
    with pytest.raises(ConfigError):
        render_stack(project)
    assert project_release_id(project) == head
