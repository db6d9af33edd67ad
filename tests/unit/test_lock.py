"""The deploy lock: refused with the holder and since when, released after the deploy, breakable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.engine.lock import HOLDER_LABEL, SINCE_LABEL, deploy_lock
from composekit.errors import LockedError

NOW = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)


class Engine:
    """Containers by name, created atomically as the engine does."""

    def __init__(self) -> None:
        self.locks: dict[str, dict[str, str]] = {}

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> bool:
        if name in self.locks:
            return False
        self.locks[name] = labels
        return True

    def lock_labels(self, name: str) -> dict[str, str] | None:
        return self.locks.get(name)

    def remove_lock(self, name: str) -> None:
        self.locks.pop(name, None)


def project(tmp_path: Path) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


def test_a_second_deploy_is_refused_with_the_holder_and_since(tmp_path: Path) -> None:
    engine, p = Engine(), project(tmp_path)
    with deploy_lock(p, engine, "up", now=lambda: NOW):  # type: ignore[arg-type]
        held = engine.locks["shop-deploy-lock"]
        assert held[SINCE_LABEL] == "2026-11-30T03:04:05Z" and held[HOLDER_LABEL].endswith(" (up)")
        held[HOLDER_LABEL] = "ci@builder pid 42 (up)"
        with pytest.raises(LockedError) as caught, deploy_lock(p, engine, "up"):  # type: ignore[arg-type]
            pass
    assert str(caught.value) == (
        "another deploy of shop holds the deploy lock (container shop-deploy-lock) since 2026-11-30T03:04:05Z: "
        "ci@builder pid 42 (up). Wait for it to finish; if that deploy died (its process is gone), run again "
        "with --break-lock"
    )
    assert engine.locks == {}  # released when the deploy ends


def test_break_lock_removes_a_stale_lock_and_says_whose(tmp_path: Path) -> None:
    engine, p = Engine(), project(tmp_path)
    engine.locks["shop-deploy-lock"] = {HOLDER_LABEL: "me@laptop pid 7 (up)", SINCE_LABEL: "2026-11-29T10:00:00Z"}
    said: list[str] = []
    with deploy_lock(p, engine, "up", break_lock=True, report=said.append):  # type: ignore[arg-type]
        assert engine.locks["shop-deploy-lock"][SINCE_LABEL] != "2026-11-29T10:00:00Z"
    assert said == ["breaking the deploy lock held by me@laptop pid 7 (up) since 2026-11-29T10:00:00Z"]
