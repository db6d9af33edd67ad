"""Engine settings without a daemon: `docker info` as saved JSON, a fake /proc, real files for daemon.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from composekit.cli import app
from composekit.cli import engine as cli_engine
from composekit.engine.daemon_json import Wanted, merge_daemon_json
from composekit.engine.settings import (
    EngineSettings,
    LocalDaemon,
    apply_advice,
    check_log_opts,
    find_local_daemon,
    local_daemon_for,
    plan_configure,
    read_daemon_json,
    read_engine_settings,
    skip_wanted,
    write_daemon_json,
)
from composekit.errors import UserError
from composekit.verify.checks import Status
from composekit.verify.engine_doctor import check_engine_settings

# The keys composekit reads, as a 20.10 engine with its defaults answers `docker info --format '{{json .}}'`.
DEFAULTS_INFO: dict[str, Any] = {
    "Name": "server",
    "DockerRootDir": "/var/lib/docker",
    "LiveRestoreEnabled": False,
    "LoggingDriver": "json-file",
    "Swarm": {"NodeID": "", "LocalNodeState": "inactive", "ControlAvailable": False},
}
SWARM_INFO = {**DEFAULTS_INFO, "Swarm": {"NodeID": "x1", "LocalNodeState": "active", "ControlAvailable": True}}


def fake_proc(root: Path, processes: list[tuple[int, str, int, list[str]]]) -> Path:
    """A /proc with (pid, comm, ppid, argv) entries, as the kernel writes stat and cmdline."""
    for pid, comm, ppid, argv in processes:
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0\n")
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir(exist_ok=True)
    return root


def test_remote_engine_settings_from_docker_info_alone() -> None:
    s = read_engine_settings(DEFAULTS_INFO, None)
    assert (s.live_restore, s.log_driver, s.swarm, s.userland_proxy, s.log_opts) == (
        False,
        "json-file",
        False,
        None,
        None,
    )
    results = check_engine_settings(s)
    why = "not visible from here: `docker info` does not report it and the engine's dockerd is not on this machine"
    assert [(r.name, r.status, r.detail) for r in results] == [
        (
            "engine live-restore",
            Status.WARN,
            "off: every container stops when dockerd stops (each engine upgrade or restart)",
        ),
        ("engine userland-proxy", Status.WARN, f"unknown ({why})"),
        ("engine log rotation", Status.WARN, f"log-driver json-file, log-opts unknown ({why})"),
    ]
    assert results[0].fix == (
        'set "live-restore": true in daemon.json (`composekit engine configure`), then `systemctl reload docker` '
        "(applied without a restart): containers then keep running while dockerd restarts"
    )


def test_local_defaults_warn_with_fixes(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path / "proc",
        [
            (1, "systemd", 0, ["/sbin/init"]),
            (700, "dockerd", 1, ["/usr/sbin/dockerd", "--config-file", str(tmp_path / "none.json")]),
            (733, "docker-proxy", 700, ["/usr/sbin/docker-proxy", "-proto", "tcp"]),
            (734, "docker-proxy", 700, ["/usr/sbin/docker-proxy", "-proto", "tcp"]),
            (800, "docker-proxy", 1, ["/usr/sbin/docker-proxy"]),  # not this dockerd's
        ],
    )
    daemon = local_daemon_for(DEFAULTS_INFO, "server", proc)
    assert daemon is not None and (daemon.pid, daemon.proxies, daemon.config_text) == (700, 2, None)
    assert local_daemon_for(DEFAULTS_INFO, "elsewhere", proc) is None
    results = check_engine_settings(read_engine_settings(DEFAULTS_INFO, daemon))
    assert [(r.status, r.detail) for r in results[1:]] == [
        (
            Status.WARN,
            "on (2 docker-proxy process(es) of dockerd (pid 700)): published ports go through docker-proxy "
            "processes that die with dockerd, so requests fail during a daemon restart even with "
            "live-restore",
        ),
        (
            Status.WARN,
            f"log-driver json-file without max-size ({tmp_path / 'none.json'} of dockerd (pid 700)): "
            "container logs grow until the disk is full",
        ),
    ]
    assert results[1].fix == (
        'set "userland-proxy": false in daemon.json (`composekit engine configure`) and restart dockerd: the kernel '
        "forwards published ports instead; changing it restarts the containers once"
    )


def test_local_settings_from_daemon_json_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(merge_daemon_json(None, Wanted()).after)
    proc = fake_proc(
        tmp_path / "proc",
        [
            (50, "dockerd", 1, ["dockerd", "--data-root", "/srv/other"]),  # another engine: another data root
            (90, "dockerd", 1, ["dockerd", f"--config-file={config}"]),
        ],
    )
    daemon = find_local_daemon("/var/lib/docker", proc)
    assert daemon is not None and daemon.pid == 90
    info = {**DEFAULTS_INFO, "LiveRestoreEnabled": True}
    results = check_engine_settings(read_engine_settings(info, daemon))
    assert [(r.status, r.detail) for r in results] == [
        (Status.OK, "on: containers keep running while dockerd restarts"),
        (Status.OK, f"off ({config} of dockerd (pid 90)): the kernel forwards published ports"),
        (Status.OK, f"log-driver json-file, max-size 10m, max-file 3 ({config} of dockerd (pid 90))"),
    ]
    flags = LocalDaemon(
        91,
        ("dockerd", "--userland-proxy=false", "--log-opt", "max-size=5m", "--live-restore"),
        "/etc/docker/daemon.json",
        None,
    )
    s = read_engine_settings(info, flags)
    assert (s.userland_proxy, s.userland_proxy_source, s.log_opts) == (
        False,
        "dockerd (pid 91) command line: --userland-proxy=false",
        {"max-size": "5m"},
    )


def test_unreadable_daemon_json_is_named(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text('{"userland-proxy": false,}')
    proc = fake_proc(tmp_path / "proc", [(90, "dockerd", 1, ["dockerd", "--config-file", str(config)])])
    s = read_engine_settings(DEFAULTS_INFO, find_local_daemon("/var/lib/docker", proc))
    assert s.userland_proxy is None
    assert check_engine_settings(s)[1].detail == (
        f"unknown ({config}: line 1, column 26: not valid JSON (Expecting property name enclosed in double quotes); "
        "dockerd cannot read it either: correct it, then run this command again (it is left as it is))"
    )


def test_swarm_node_does_not_recommend_live_restore() -> None:
    results = check_engine_settings(read_engine_settings(SWARM_INFO, None))
    assert (results[0].status, results[0].detail, results[0].fix) == (
        Status.OK,
        "off, as it must be on a Swarm node (state active): the engine refuses Swarm mode while live-restore is on "
        '("--live-restore daemon configuration is incompatible with swarm mode")',
        "",
    )
    assert "live-restore" not in " ".join(r.fix for r in results)


def test_configure_refuses_live_restore_on_a_swarm_node(tmp_path: Path) -> None:
    settings = read_engine_settings(SWARM_INFO, None)
    with pytest.raises(UserError) as info:
        plan_configure(tmp_path / "daemon.json", None, Wanted(), settings)
    assert str(info.value) == (
        "engine configure: this engine is a Swarm node (docker info: Swarm/LocalNodeState active): the engine "
        'refuses Swarm mode while live-restore is on ("--live-restore daemon configuration is incompatible with '
        'swarm mode"); run again with --skip live-restore for the other settings'
    )
    merge = plan_configure(tmp_path / "daemon.json", None, skip_wanted(["live-restore"], "10m", "3"), settings)
    assert "live-restore" not in merge.after and '"userland-proxy": false' in merge.after


def test_configure_refuses_a_key_dockerd_has_as_a_flag(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    daemon = LocalDaemon(4242, ("dockerd", "--live-restore"), str(path), None)
    settings = read_engine_settings(DEFAULTS_INFO, daemon)
    with pytest.raises(UserError) as info:
        plan_configure(path, None, Wanted(), settings)
    assert str(info.value) == (
        f"engine configure: dockerd (pid 4242) has --live-restore on its command line, and dockerd refuses to start "
        f"when a setting is both a flag and in {path}: remove the flag (for systemd, from the unit's ExecStart) or "
        "run again with --skip live-restore"
    )
    journald = LocalDaemon(4242, ("dockerd", "--log-driver=journald"), str(path), None)
    with pytest.raises(UserError) as driver:
        plan_configure(path, None, Wanted(), read_engine_settings(DEFAULTS_INFO, journald))
    assert str(driver.value) == (
        "engine configure: dockerd (pid 4242) runs with --log-driver journald, which does not take json-file's "
        "max-size/max-file: run again with --skip log-opts"
    )
    # Another file than the one this dockerd reads: no clash.
    assert plan_configure(tmp_path / "other.json", None, Wanted(), settings).changed


def test_skip_names_known_keys_only() -> None:
    with pytest.raises(UserError) as info:
        skip_wanted(["live_restore"], "10m", "3")
    assert str(info.value) == '--skip: expected one of live-restore, userland-proxy, log-opts, got "live_restore"'


def test_apply_advice() -> None:
    daemon = LocalDaemon(77, ("dockerd",), "/etc/docker/daemon.json", None)
    only_live = merge_daemon_json("{}", Wanted(userland_proxy=None, log_max_size=None, log_max_file=None))
    assert apply_advice(only_live, daemon) == (
        "apply: `systemctl reload docker` (or `kill -HUP 77`): dockerd reloads live-restore without a restart"
    )
    assert apply_advice(merge_daemon_json("{}", Wanted()), None) == (
        "apply: `systemctl restart docker`: userland-proxy and log-opts take effect at dockerd's start only; "
        "log-opts apply to containers created afterwards (`composekit up` recreates the stack's); changing "
        "userland-proxy restarts the containers once (restart: always brings the stack back)"
    )


def test_write_keeps_a_backup_and_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    assert read_daemon_json(path) is None
    first = merge_daemon_json(None, Wanted(userland_proxy=None, log_max_size=None, log_max_file=None), str(path))
    assert write_daemon_json(first, path) is None
    assert (path.read_text(), os.stat(path).st_mode & 0o777) == ('{\n  "live-restore": true\n}\n', 0o644)
    os.chmod(path, 0o600)
    second = merge_daemon_json(path.read_text(), Wanted(), str(path))
    backup = write_daemon_json(second, path, now=0)
    assert backup == tmp_path / "daemon.json.19700101T000000Z.bak"
    assert backup.read_text() == '{\n  "live-restore": true\n}\n'
    assert json.loads(path.read_text())["userland-proxy"] is False
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        read_daemon_json(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read it (Is a directory); it is left as it is"


# the command ----------------------------------------------------------------------------------------

runner = CliRunner()


def no_engine(monkeypatch: pytest.MonkeyPatch, settings: EngineSettings | None = None) -> None:
    monkeypatch.setattr(cli_engine, "_live_settings", lambda: settings)


def test_command_dry_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_engine(monkeypatch)
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n')
    result = runner.invoke(app, ["engine", "configure", "--file", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"+++ {path} (composekit)\n" in result.stdout and '+  "live-restore": true,\n' in result.stdout
    assert path.read_text() == '{"debug": true}\n' and list(tmp_path.iterdir()) == [path]


def test_command_asks_and_writes_with_yes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_engine(monkeypatch)
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n')
    refused = runner.invoke(app, ["engine", "configure", "--file", str(path)])
    assert refused.exit_code == 1
    assert refused.stderr.endswith(
        f"error: engine configure: not writing {path} without a terminal to ask on: run with --yes (or --dry-run "
        "to see the diff only)\n"
    )
    written = runner.invoke(app, ["engine", "configure", "--file", str(path), "--yes"])
    assert written.exit_code == 0, written.output
    assert json.loads(path.read_text()) == {
        "debug": True,
        "live-restore": True,
        "userland-proxy": False,
        "log-opts": {"max-size": "10m", "max-file": "3"},
    }
    assert "apply: `systemctl restart docker`" in written.stderr
    assert len(list(tmp_path.glob("daemon.json.*.bak"))) == 1


def test_command_reports_a_bad_file_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_engine(monkeypatch)
    path = tmp_path / "daemon.json"
    path.write_text("{\n  // comment\n}\n")
    result = runner.invoke(app, ["engine", "configure", "--file", str(path), "--yes"])
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"error: {path}: line 2, column 3: a comment; JSON has no comments and dockerd refuses this file: remove "
        "them, then run this command again (it is left as it is)\n"
    )
    assert path.read_text() == "{\n  // comment\n}\n" and list(tmp_path.iterdir()) == [path]


def test_command_validates_log_options_as_the_config_does_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_engine(monkeypatch)
    path = tmp_path / "daemon.json"
    args = ["engine", "configure", "--file", str(path), "--yes"]
    result = runner.invoke(app, [*args, "--log-max-size", "banana", "--log-max-file", "-4"])
    assert result.exit_code == 1
    assert result.stderr == (
        'error: --log-max-size: expected a size from 1K to 1G, such as "10m", got "banana" (as logging/max_size in '
        "the config)\n"
        'error: --log-max-file: expected an integer from 1 to 100, got "-4" (as logging/max_file in the config)\n'
    )
    assert not path.exists()
    for size, count in (("2g", "3"), ("10m", "101"), ("10m", "3.5"), ("0", "3"), ("10m", "\uff13")):
        refused = runner.invoke(app, [*args, "--log-max-size", size, "--log-max-file", count])
        assert refused.exit_code == 1, (size, count, refused.output)
        assert not path.exists()
    written = runner.invoke(app, [*args, "--log-max-size", "512k", "--log-max-file", "100"])
    assert written.exit_code == 0, written.output
    assert json.loads(path.read_text())["log-opts"] == {"max-size": "512k", "max-file": "100"}


def test_skipped_log_options_are_not_validated() -> None:
    assert skip_wanted(["log-opts"], "banana", "-4").log_max_size is None
    with pytest.raises(UserError) as info:
        check_log_opts("10m", "0")
    assert str(info.value) == (
        '--log-max-file: expected an integer from 1 to 100, got "0" (as logging/max_file in the config)'
    )


def test_command_on_a_swarm_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_engine(monkeypatch, read_engine_settings(SWARM_INFO, None))
    path = tmp_path / "daemon.json"
    result = runner.invoke(app, ["engine", "configure", "--file", str(path), "--yes"])
    assert result.exit_code == 1 and "this engine is a Swarm node" in result.stderr
    assert not path.exists()
    skipped = runner.invoke(app, ["engine", "configure", "--file", str(path), "--yes", "--skip", "live-restore"])
    assert skipped.exit_code == 0, skipped.output
    assert "live-restore" not in json.loads(path.read_text())


def test_command_notes_when_dockerd_reads_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = LocalDaemon(4242, ("dockerd",), "/etc/docker/daemon.json", None)
    no_engine(monkeypatch, read_engine_settings(DEFAULTS_INFO, daemon))
    path = tmp_path / "daemon.json"
    result = runner.invoke(app, ["engine", "configure", "--file", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.stderr.split()).startswith(
        f"composekit: note: dockerd (pid 4242) reads /etc/docker/daemon.json, not {path}: it takes this file only "
        f"when started with --config-file {path}"
    )
