"""Release ids: the git commit, "-dirty" for a changed tree, a UTC timestamp outside git."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from composekit.engine.switch import release_id

NOW = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_outside_git_a_utc_timestamp(tmp_path: Path) -> None:
    assert release_id(tmp_path, now=lambda: NOW) == "20261130T030405Z"


def test_the_commit_then_dirty_when_the_app_changed(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "main.py").write_text("VERSION = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    head = git(tmp_path, "rev-parse", "--short=12", "HEAD")
    assert release_id(tmp_path, now=lambda: NOW) == head
    (tmp_path / "main.py").write_text("VERSION = 2\n")
    assert release_id(tmp_path, now=lambda: NOW) == f"{head}-dirty"
