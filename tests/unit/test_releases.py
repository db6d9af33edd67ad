"""Release history on the engine (a fake one here): recorded, pruned to releases/keep, rollback's refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import composekit.deploy.releases
import composekit.engine.probes
from composekit.config.project import Project, load_project
from composekit.deploy import rollback
from composekit.engine.docker import ContainerInfo
from composekit.engine.releases import (
    LastMigration,
    read_last_migration,
    record_migration,
    record_release,
)
from composekit.engine.routes_volume import MIGRATION_FILE, RELEASES_FILE
from composekit.errors import ConfigError, UserError

NOW = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)


def container(service: str, image: str) -> ContainerInfo:
    return ContainerInfo(f"id-{service}", f"shop-{service}-1", service, "running", None, None, 0, None, None, 1, image)


class Engine:
    def __init__(self, releases: list[dict[str, Any]], serving: str = "sha256:b") -> None:
        self.files = {RELEASES_FILE: json.dumps(releases)}
        self.serving = serving
        self.images = {"shop-app:latest": serving} | {f"shop-app:{r['id']}": r["image"] for r in releases}
        self.untagged: list[str] = []
        self.tagged: list[tuple[str, str]] = []
        self.compose_environment: dict[str, str] = {}  # rollback gives Compose the stack's secrets
        self.engine = None  # the local one (wait_routed is faked where a rollback gets that far)

    def engine_version(self) -> str:
        return "20.10.24"

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        return "lock-id"

    def remove_lock(self, container_id: str) -> bool:
        return True

    def containers(self) -> list[ContainerInfo]:
        return [container("routes", "sha256:py"), container("app", self.serving)]

    def exec(self, name: str, argv: list[str]) -> str:
        assert name == "shop-routes-1"
        if len(argv) == 6:  # python3 -I -c WRITER path text
            self.files[argv[4]] = argv[5]
            return ""
        missing = "null" if argv[4] == MIGRATION_FILE else "[]"  # as each reader prints for a missing file
        return self.files.get(argv[4], missing)  # python3 -I -c READER path

    def image_id(self, image: str) -> str:
        return str(self.images[image])

    def image_exists(self, image: str) -> bool:
        return image in self.images

    def untag(self, tag: str) -> None:
        self.untagged.append(tag)

    def tag(self, image: str, tag: str) -> None:
        self.tagged.append((image, tag))


def release(id: str, image: str) -> dict[str, str]:
    return {"id": id, "image": image, "created": "2026-11-29T10:00:00Z", "config_hash": "h"}


def project(tmp_path: Path, extra: dict[str, Any] | None = None) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}, **(extra or {})}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


def test_a_release_is_recorded_and_older_images_beyond_keep_are_untagged(tmp_path: Path) -> None:
    engine = Engine([release("r1", "sha256:1"), release("r2", "sha256:2")], serving="sha256:3")
    removed = record_release(project(tmp_path, {"releases": {"keep": 2}}), engine, "r3", "h3", now=NOW)  # type: ignore[arg-type]
    assert removed == ["shop-app:r1"] and engine.untagged == ["shop-app:r1"]
    assert json.loads(engine.files[RELEASES_FILE]) == [
        release("r2", "sha256:2") | {"migration": None},  # written before migration states: unknown
        {"id": "r3", "image": "sha256:3", "created": "2026-11-30T03:04:05Z", "config_hash": "h3", "migration": None},
    ]


def test_keep_must_be_a_small_positive_integer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        project(tmp_path, {"releases": {"keep": 0}})
    assert (
        str(caught.value) == f"{tmp_path / 'composekit.yaml'}: releases/keep: expected an integer from 1 to 100, got 0"
    )


@pytest.mark.parametrize(
    ("history", "target", "message"),
    [
        (
            [release("r2", "sha256:b")],
            None,
            "there is no release before the serving one to roll back to (`composekit releases`)",
        ),
        (
            [release("r1", "sha256:a"), release("r2", "sha256:b")],
            "r",
            "release 'r' matches 2 of the recorded releases (r1, r2)",
        ),
        ([release("r1", "sha256:a"), release("r2", "sha256:b")], "r2", "release r2 is already serving"),
    ],
)
def test_rollback_refuses_with_a_reason(
    tmp_path: Path, history: list[dict[str, str]], target: str | None, message: str
) -> None:
    with pytest.raises(UserError) as caught:
        rollback(project(tmp_path), target, docker=Engine(history))  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_rollback_refuses_a_release_whose_image_was_pruned(tmp_path: Path) -> None:
    engine = Engine([release("r1", "sha256:a"), release("r2", "sha256:b")])
    del engine.images["shop-app:r1"]
    with pytest.raises(UserError) as caught:
        rollback(project(tmp_path), docker=engine)  # type: ignore[arg-type]
    assert str(caught.value) == "the image of release r1 (shop-app:r1) is no longer on the engine"


def migrated(id: str, image: str, migration: str | None) -> dict[str, Any]:
    return release(id, image) | {"migration": migration}


def test_rollback_across_a_migration_is_refused_without_yes(tmp_path: Path) -> None:
    engine = Engine([migrated("r1", "sha256:a", "0001"), migrated("r2", "sha256:b", "0002")])
    with pytest.raises(UserError) as caught:
        rollback(project(tmp_path, {"migrate": {"command": "alembic upgrade head"}}), docker=engine)  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        "the database was migrated since release r1: it is at migration state 0002 (recorded by release r2, the last "
        "deployed), release r1 was deployed at 0001. A rollback does not reverse migrations"
    )


def test_rollback_compares_with_the_newest_release_not_the_serving_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a rollback to r1 (--yes), the database is still at r2's state: going back further to r0 (deployed at
    r1's state) is a rollback across r2's migration, and going forward to r2 is none."""
    history = [
        migrated("r0", "sha256:z", "0001"),
        migrated("r1", "sha256:a", "0001"),
        migrated("r2", "sha256:b", "0002"),
    ]
    alembic = project(tmp_path, {"migrate": {"command": "alembic upgrade head"}})
    with pytest.raises(UserError) as caught:
        rollback(alembic, "r0", docker=Engine(history, serving="sha256:a"))  # type: ignore[arg-type]
    assert "the database was migrated since release r0: it is at migration state 0002" in str(caught.value)
    switched: list[str] = []
    monkeypatch.setattr(
        composekit.deploy.releases,
        "switch_app",
        lambda project, docker, deadline, release, *a: switched.append(release),
    )
    monkeypatch.setattr(composekit.engine.probes, "wait_routed", lambda *a, **k: None)
    engine = Engine(history, serving="sha256:a")
    said: list[str] = []
    rollback(alembic, "r2", docker=engine, report=said.append)  # type: ignore[arg-type]
    assert switched == ["r2"] and not [line for line in said if line.startswith("warning:")]


def test_rollback_with_yes_goes_on_and_warns_that_the_database_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    switched: list[str] = []
    monkeypatch.setattr(
        composekit.deploy.releases,
        "switch_app",
        lambda project, docker, deadline, release, *a: switched.append(release),
    )
    monkeypatch.setattr(composekit.engine.probes, "wait_routed", lambda *a, **k: None)
    engine = Engine([migrated("r1", "sha256:a", "0001"), migrated("r2", "sha256:b", "0002")])
    said: list[str] = []
    alembic = project(tmp_path, {"migrate": {"command": "alembic upgrade head"}})
    rollback(alembic, docker=engine, report=said.append, yes=True)  # type: ignore[arg-type]
    assert switched == ["r1"] and engine.tagged == [("shop-app:r1", "shop-app:latest")]
    assert (
        "warning: the database stays at migration state 0002 (recorded by release r2, the last deployed); release "
        "r1 was deployed at 0001 (--yes)" in said
    )


def test_a_migration_whose_release_never_went_live_still_guards_the_rollback(tmp_path: Path) -> None:
    """r1 and r2 both went live at 0002; r3's migration then took the database to 0003, and r3 never went live (it
    is in no release record). The records alone say r1 is safe; the last migration's record says it is not."""
    engine = Engine([migrated("r1", "sha256:a", "0002"), migrated("r2", "sha256:b", "0002")])
    alembic = project(tmp_path, {"migrate": {"command": "alembic upgrade head"}})
    record_migration(engine, "r3", "0003", NOW)  # type: ignore[arg-type]
    assert json.loads(engine.files[MIGRATION_FILE]) == {"release": "r3", "state": "0003", "at": "2026-11-30T03:04:05Z"}
    assert read_last_migration(engine) == LastMigration("r3", "0003", "2026-11-30T03:04:05Z")  # type: ignore[arg-type]
    with pytest.raises(UserError) as caught:
        rollback(alembic, docker=engine)  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        "the database was migrated since release r1: it is at migration state 0003 (left by the last migration, "
        "release r3's), release r1 was deployed at 0002. A rollback does not reverse migrations"
    )
    assert engine.tagged == []


def test_no_migration_record_yet_falls_back_to_the_newest_release(tmp_path: Path) -> None:
    """Stacks deployed before migration.json existed: the newest release's record, as before."""
    engine = Engine([migrated("r1", "sha256:a", "0001"), migrated("r2", "sha256:b", "0002")])
    assert read_last_migration(engine) is None  # type: ignore[arg-type]
    engine.files[MIGRATION_FILE] = "{not json"
    with pytest.raises(UserError, match=r"migration\.json in the routes volume is not a migration record"):
        read_last_migration(engine)  # type: ignore[arg-type]


def test_rollback_puts_the_processes_on_the_old_image_before_the_web_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    engine = Engine([release("r1", "sha256:a"), release("r2", "sha256:b")])

    def processes(project: Project, docker: Any, deadline: Any, release: str, *a: Any) -> list[Any]:
        steps.append(f"processes {release}, app image tagged {engine.tagged}, serving {a[-1]}")
        return []

    monkeypatch.setattr(composekit.deploy.releases, "deploy_processes", processes)
    monkeypatch.setattr(
        composekit.deploy.releases, "switch_app", lambda p, d, deadline, release, *a: steps.append(release)
    )
    monkeypatch.setattr(composekit.engine.probes, "wait_routed", lambda *a, **k: None)
    rollback(project(tmp_path, {"processes": {"worker": "python -m app.worker"}}), docker=engine)  # type: ignore[arg-type]
    assert steps == ["processes r1, app image tagged [('shop-app:r1', 'shop-app:latest')], serving sha256:b", "r1"]
