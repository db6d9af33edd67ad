"""The deploy lock: refused with the holder and since when, released after the deploy, breakable."""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from composekit.config.project import Project, load_project
from composekit.engine.lock import HOLDER_LABEL, PLACE_LABEL, PROCESS_LABEL, SINCE_LABEL, deploy_lock
from composekit.errors import DockerError, LockedError

NOW = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)


class Engine:
    """Containers by name, created atomically as the engine does; each creation gets a new ID."""

    def __init__(self) -> None:
        self.locks: dict[str, dict[str, str]] = {}
        self.ids: dict[str, str] = {}
        self.created = 0

    def create_lock(self, name: str, image: str, labels: dict[str, str]) -> str | None:
        if name in self.locks:
            return None
        self.locks[name] = labels
        self.created += 1
        self.ids[name] = f"id{self.created}"
        return self.ids[name]

    def lock_labels(self, name: str) -> dict[str, str] | None:
        return self.locks.get(name)

    def lock_id(self, name: str) -> str | None:
        return self.ids.get(name) if name in self.locks else None

    def container_labels(self, container: str) -> dict[str, str]:
        return next(self.locks[n] for n, i in self.ids.items() if i == container and n in self.locks)

    def remove_now(self, container: str) -> None:
        name = next((n for n, i in self.ids.items() if i == container and n in self.locks), None)
        if name is None:
            raise DockerError(f"cannot remove container {container}", (), "No such container", "")
        del self.locks[name]

    def remove_lock(self, container: str) -> bool:
        """By ID or by name, as `docker rm -f` takes either; False when there is no such container."""
        name = container if container in self.locks else self._name_of(container)
        if name is None:
            return False
        del self.locks[name]
        return True

    def _name_of(self, container: str) -> str | None:
        return next((n for n, i in self.ids.items() if i == container and n in self.locks), None)


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


def fake_proc(tmp_path: Path, boot: str = "boot-1", namespace: str = "pid:[4026531836]") -> Path:
    """A /proc with a boot id, this process's PID namespace and its own stat line (start time 1000)."""
    proc = tmp_path / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "sys/kernel/random/boot_id").write_text(boot + "\n")
    (proc / "self/ns").mkdir(parents=True)
    (proc / "self/ns/pid").symlink_to(namespace)
    set_process(proc, os.getpid(), 1000)
    return proc


def set_process(proc: Path, pid: int, started: int) -> None:
    """/proc/PID/stat with the start time (field 22) ``started``; the command holds spaces and a ")"."""
    (proc / str(pid)).mkdir(exist_ok=True)
    fields = ["S", *["0"] * 18, str(started), "0"]
    (proc / str(pid) / "stat").write_text(f"{pid} (python3 ) x) {' '.join(fields)}\n")


def held_by(tmp_path: Path, proc: Path, pid: int, started: int) -> tuple[Engine, Project]:
    """A lock taken by a deploy whose process was PID ``pid`` started at ``started``, in the place ``proc`` is."""
    engine, p = Engine(), project(tmp_path)
    with deploy_lock(p, engine, "up", proc=proc):  # type: ignore[arg-type]
        labels = dict(engine.locks["shop-deploy-lock"])
    assert labels[PROCESS_LABEL] == f"{os.getpid()} 1000" and len(labels[PLACE_LABEL]) == 24
    labels[PROCESS_LABEL] = f"{pid} {started}"
    engine.create_lock("shop-deploy-lock", "python", labels)
    return engine, p


def test_a_lock_left_here_by_a_process_that_is_gone_is_removed_with_a_word(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    engine, p = held_by(tmp_path, proc, 999_999, 500)  # no /proc/999999: that deploy died
    said: list[str] = []
    with deploy_lock(p, engine, "up", proc=proc, report=said.append):  # type: ignore[arg-type]
        assert engine.locks["shop-deploy-lock"][PROCESS_LABEL] == f"{os.getpid()} 1000"
    assert len(said) == 1 and said[0].endswith("that deploy ran on this machine and its process is gone")
    assert said[0].startswith("removing the deploy lock left by ")
    assert engine.locks == {}


def test_a_reused_pid_does_not_keep_a_dead_deploys_lock(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    set_process(proc, 4242, 7000)  # PID 4242 runs, but started after the lock's holder (start 500)
    engine, p = held_by(tmp_path, proc, 4242, 500)
    with deploy_lock(p, engine, "up", proc=proc):  # type: ignore[arg-type]
        pass
    assert engine.locks == {}


def test_a_live_holder_here_keeps_its_lock(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    set_process(proc, 4242, 500)
    engine, p = held_by(tmp_path, proc, 4242, 500)
    with pytest.raises(LockedError, match="run again with --break-lock"), deploy_lock(p, engine, "up", proc=proc):  # type: ignore[arg-type]
        pass
    assert engine.locks["shop-deploy-lock"][PROCESS_LABEL] == "4242 500"


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"boot": "boot-2"},  # another machine, or this one rebooted: its PIDs say nothing here
        {"namespace": "pid:[4026532999]"},  # a container with its own PID namespace
    ],
)
def test_a_lock_from_elsewhere_is_never_removed_without_break_lock(tmp_path: Path, elsewhere: dict[str, str]) -> None:
    engine, p = held_by(tmp_path, fake_proc(tmp_path / "there", **elsewhere), 999_999, 500)
    with pytest.raises(LockedError), deploy_lock(p, engine, "up", proc=fake_proc(tmp_path)):  # type: ignore[arg-type]
        pass
    assert engine.locks["shop-deploy-lock"][PROCESS_LABEL] == "999999 500"


def test_without_proc_nothing_is_recorded_and_nothing_is_removed(tmp_path: Path) -> None:
    engine, p = Engine(), project(tmp_path)
    with deploy_lock(p, engine, "up", proc=tmp_path / "no-proc"):  # type: ignore[arg-type]
        assert PLACE_LABEL not in engine.locks["shop-deploy-lock"]
    engine.locks["shop-deploy-lock"] = {HOLDER_LABEL: "me@laptop pid 7 (up)", SINCE_LABEL: "2026-11-29T10:00:00Z"}
    with pytest.raises(LockedError), deploy_lock(p, engine, "up", proc=fake_proc(tmp_path)):  # type: ignore[arg-type]
        pass


def test_a_stale_lock_another_deploy_replaced_meanwhile_is_left_to_it(tmp_path: Path) -> None:
    """Two deploys find the same dead holder: the one that comes second must not remove the first one's lock."""
    proc = fake_proc(tmp_path)
    engine, p = held_by(tmp_path, proc, 999_999, 500)
    stale_id = engine.ids["shop-deploy-lock"]
    real_remove = engine.remove_now

    def racing_remove(container: str) -> None:
        real_remove(container)  # the other deploy removed the stale lock and took its own
        engine.create_lock("shop-deploy-lock", "python", {HOLDER_LABEL: "other@here pid 5 (up)", SINCE_LABEL: "now"})
        engine.remove_now = real_remove  # type: ignore[method-assign]
        real_remove(container)  # this deploy's removal, by the stale ID, now finds nothing

    engine.remove_now = racing_remove  # type: ignore[method-assign]
    with pytest.raises(LockedError, match="other@here pid 5"), deploy_lock(p, engine, "up", proc=proc):  # type: ignore[arg-type]
        pass
    assert engine.locks["shop-deploy-lock"][HOLDER_LABEL] == "other@here pid 5 (up)"
    assert engine.ids["shop-deploy-lock"] != stale_id


def test_a_deploy_whose_lock_was_broken_leaves_the_new_holders_lock(tmp_path: Path) -> None:
    """Deploy A runs; B breaks A's lock and takes its own; A ends first: B's lock must stay until B ends."""
    engine, p = Engine(), project(tmp_path)
    said: list[str] = []
    with ExitStack() as b:
        with deploy_lock(p, engine, "up", report=said.append):  # type: ignore[arg-type]
            b.enter_context(deploy_lock(p, engine, "up", break_lock=True))  # type: ignore[arg-type]
            assert engine.ids["shop-deploy-lock"] == "id2"
        assert engine.lock_id("shop-deploy-lock") == "id2"  # A's exit did not remove B's lock
        assert said == [
            "note: the deploy lock shop-deploy-lock this deploy held was removed meanwhile (--break-lock by another "
            "deploy?); a lock taken since is left to its holder"
        ]
    assert engine.locks == {}  # B released its own


def test_a_failed_lock_removal_does_not_hide_the_deploys_error(tmp_path: Path) -> None:
    engine, p = Engine(), project(tmp_path)

    def lost(container: str) -> bool:
        raise DockerError("cannot remove the deploy lock id1", ("docker", "rm"), "connection lost", "")

    engine.remove_lock = lost  # type: ignore[method-assign]
    said: list[str] = []
    with pytest.raises(RuntimeError, match="the migration failed"), deploy_lock(p, engine, "up", report=said.append):  # type: ignore[arg-type]
        raise RuntimeError("the migration failed")
    assert said == [
        "note: the deploy lock shop-deploy-lock could not be removed (cannot remove the deploy lock id1); the next "
        "deploy from this machine removes it by itself, from elsewhere run it with --break-lock"
    ]
    # Without an error of its own, the deploy reports the removal failure as its error: the lock is still there.
    other = Engine()
    other.remove_lock = lost  # type: ignore[method-assign]
    with pytest.raises(DockerError, match="cannot remove the deploy lock"), deploy_lock(p, other, "up"):  # type: ignore[arg-type]
        pass
    assert "shop-deploy-lock" in other.locks
