"""write_stack removes only files composekit wrote: the manifest beside the rendered files lists them with their
content hashes; without a manifest (an older composekit's output) only files that carry composekit's header count.
The user's files in the output directory (the app's own directory, say) are never removed nor reported stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composekit.config.project import Project, load_project
from composekit.errors import UserError
from composekit.render.stack import MANIFEST_FILE, check_stack, render_stack, write_stack

CONFIG = "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n"
SWARM = "mode: swarm\n"
USER_FILES = {
    "Dockerfile": "FROM python:3.13-slim\nCOPY . /app\n",
    "gunicorn.conf.py": "workers = 3  # the user's own\n",
    "swarm/runbook.md": "# How we run the swarm\n",
}


def app_in(tmp_path: Path, config: str = CONFIG) -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(config)
    return tmp_path / "composekit.yaml"


def with_user_files(root: Path) -> None:
    for name, content in USER_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)


def user_files_kept(root: Path) -> bool:
    return all((root / name).read_text() == content for name, content in USER_FILES.items())


def in_app_dir(config_file: Path) -> Project:
    return load_project((config_file,), out_dir=config_file.parent)


def test_render_into_the_apps_directory_keeps_the_users_files(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    with_user_files(tmp_path)
    project = in_app_dir(config_file)
    assert check_stack(project).count("+++ /dev/null") == 0  # nothing of the user's listed as stale
    write_stack(project)
    assert user_files_kept(tmp_path)
    assert (tmp_path / "compose.yaml").is_file()
    assert check_stack(project) == ""
    write_stack(project)  # and again, now with a manifest there
    assert user_files_kept(tmp_path)


def test_mode_switches_in_the_apps_directory_remove_only_composekits_files(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    with_user_files(tmp_path)
    compose = in_app_dir(config_file)
    write_stack(compose)
    config_file.write_text(CONFIG + SWARM)
    swarm = in_app_dir(config_file)
    diff = check_stack(swarm)
    assert "--- ./compose.yaml (on disk)\n+++ /dev/null\n" in diff
    assert "runbook.md" not in diff and "--- ./Dockerfile (on disk)" not in diff
    write_stack(swarm)
    assert user_files_kept(tmp_path)
    assert not (tmp_path / "compose.yaml").exists() and (tmp_path / "stack.yml").is_file()
    assert (tmp_path / "swarm" / "traefik.yml").is_file()
    assert check_stack(swarm) == ""
    config_file.write_text(CONFIG)
    write_stack(compose)
    assert user_files_kept(tmp_path)
    assert not (tmp_path / "stack.yml").exists() and not (tmp_path / "swarm" / "traefik.yml").exists()
    assert sorted(p.name for p in (tmp_path / "swarm").iterdir()) == ["runbook.md"]
    assert check_stack(compose) == ""


def test_the_manifest_lists_every_rendered_file_with_its_hash_and_is_deterministic(tmp_path: Path) -> None:
    project = load_project((app_in(tmp_path),))
    stack = render_stack(project)
    manifest = json.loads(stack.files[MANIFEST_FILE])
    assert sorted(manifest["files"]) == sorted(name for name in stack.files if name != MANIFEST_FILE)
    assert all(digest.startswith("sha256:") and len(digest) == 7 + 64 for digest in manifest["files"].values())
    assert render_stack(load_project((app_in(tmp_path),))).files[MANIFEST_FILE] == stack.files[MANIFEST_FILE]
    write_stack(project)
    assert (project.out_dir / MANIFEST_FILE).read_text() == stack.files[MANIFEST_FILE]
    assert check_stack(project) == ""


def test_a_file_composekit_wrote_and_the_user_edited_is_kept_with_a_warning(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    project = load_project((config_file,))
    write_stack(project)
    out = project.out_dir
    (out / "Dockerfile").write_text((out / "Dockerfile").read_text() + "RUN echo mine\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\n"
    )  # the app now has its own: composekit's is no longer rendered
    (tmp_path / ".dockerignore").write_text("secrets/\n")
    (out / "Dockerfile.dockerignore").write_text("edited too\n")
    project = load_project((config_file,))
    diff = check_stack(project)  # compose.yaml names the app's Dockerfile now; the edited files are no drift
    assert "--- .composekit/compose.yaml (on disk)" in diff and "+++ /dev/null" not in diff
    warnings: list[str] = []
    write_stack(project, warn=warnings.append)
    assert (out / "Dockerfile").read_text().endswith("RUN echo mine\n")
    assert warnings == [
        f"kept {out / name}: an earlier `composekit render` wrote it and this one no longer does, but it was edited "
        "since, so it is yours now; delete it if nothing needs it"
        for name in ("Dockerfile", "Dockerfile.dockerignore")
    ]
    assert check_stack(project) == ""
    warnings.clear()
    write_stack(project, warn=warnings.append)
    assert warnings == []  # said once: the new manifest no longer lists them


def test_an_unedited_file_composekit_no_longer_renders_is_removed(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    project = load_project((config_file,))
    write_stack(project)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("secrets/\n")
    project = load_project((config_file,))
    assert "--- .composekit/Dockerfile (on disk)\n+++ /dev/null\n" in check_stack(project)
    write_stack(project)
    assert not (project.out_dir / "Dockerfile").exists()
    assert check_stack(project) == ""


def test_without_a_manifest_only_files_with_composekits_header_are_removed(tmp_path: Path) -> None:
    """An output directory an older composekit rendered (no manifest)."""
    config_file = app_in(tmp_path)
    project = load_project((config_file,))
    out = project.out_dir
    (out / "swarm").mkdir(parents=True)
    (out / "stack.yml").write_text("# Generated by composekit from composekit.yaml. Do not edit: ...\nservices: {}\n")
    (out / "swarm" / "traefik.yml").write_text("# Generated by composekit. Do not edit: ...\nlog: {}\n")
    (out / "swarm" / "runbook.md").write_text("# ours\n")
    (out / "gunicorn.conf.py").write_text("workers = 3\n")
    diff = check_stack(project)
    assert "--- .composekit/stack.yml (on disk)\n+++ /dev/null\n" in diff
    assert "--- .composekit/swarm/traefik.yml (on disk)\n+++ /dev/null\n" in diff
    assert "runbook.md" not in diff and "gunicorn.conf.py (on disk)" not in diff
    write_stack(project)
    assert not (out / "stack.yml").exists() and not (out / "swarm" / "traefik.yml").exists()
    assert (out / "swarm" / "runbook.md").read_text() == "# ours\n"
    assert (out / "gunicorn.conf.py").read_text() == "workers = 3\n"
    assert check_stack(project) == ""


def test_a_manifest_entry_outside_the_output_directory_is_ignored(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    project = load_project((config_file,))
    write_stack(project)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    manifest = project.out_dir / MANIFEST_FILE
    doc = json.loads(manifest.read_text())
    doc["files"]["../precious.txt"] = "sha256:" + __import__("hashlib").sha256(b"keep me\n").hexdigest()
    doc["files"][str(outside)] = doc["files"]["../precious.txt"]
    manifest.write_text(json.dumps(doc))
    write_stack(project)
    assert outside.read_text() == "keep me\n"


def test_a_users_file_where_composekit_renders_one_is_not_overwritten(tmp_path: Path) -> None:
    config_file = app_in(tmp_path)
    mine = "services:\n  web: {image: nginx}\n"
    (tmp_path / "compose.yaml").write_text(mine)
    project = in_app_dir(config_file)
    with pytest.raises(UserError) as info:
        write_stack(project)
    assert str(info.value) == (
        f"render: {tmp_path / 'compose.yaml'} exists and composekit did not write it (not in {MANIFEST_FILE}, no "
        "composekit header), so nothing was written: move it away, or render into another directory (--out DIR)"
    )
    assert (tmp_path / "compose.yaml").read_text() == mine
    assert not (tmp_path / MANIFEST_FILE).exists() and not (tmp_path / "Dockerfile").exists()
    (tmp_path / "compose.yaml").write_text("# Generated by composekit from composekit.yaml. Do not edit\nold: 1\n")
    write_stack(project)  # an older composekit's compose.yaml: replaced
    assert (tmp_path / "compose.yaml").read_text() == render_stack(project).compose
    (tmp_path / "compose.yaml").write_text("edited by hand\n")
    write_stack(project)  # listed in the manifest now: composekit's, so replaced (render --check shows the edit)
    assert (tmp_path / "compose.yaml").read_text() == render_stack(project).compose
