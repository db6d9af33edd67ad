"""Merging composekit's engine settings into daemon.json: exact outputs for the files a server may have."""

from __future__ import annotations

import pytest

from composekit.engine.daemon_json import Change, DaemonJsonError, Wanted, merge_daemon_json

PATH = "/etc/docker/daemon.json"
ALL = """\
{
  "live-restore": true,
  "userland-proxy": false,
  "log-opts": {
    "max-size": "10m",
    "max-file": "3"
  }
}
"""
ALL_CHANGES = (
    Change("live-restore", None, True),
    Change("userland-proxy", None, False),
    Change("log-opts/max-size", None, "10m"),
    Change("log-opts/max-file", None, "3"),
)


def test_missing_file() -> None:
    merge = merge_daemon_json(None, Wanted(), PATH)
    assert (merge.before, merge.after, merge.changes, merge.notes) == ("", ALL, ALL_CHANGES, ())
    assert merge.diff() == (
        "--- /etc/docker/daemon.json (now)\n"
        "+++ /etc/docker/daemon.json (composekit)\n"
        "@@ -0,0 +1,8 @@\n" + "".join(f"+{line}\n" for line in ALL.splitlines())
    )


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n"])
def test_empty_file(text: str) -> None:
    merge = merge_daemon_json(text, Wanted(), PATH)
    assert (merge.after, merge.changes) == (ALL, ALL_CHANGES)


def test_empty_object() -> None:
    assert merge_daemon_json("{}\n", Wanted(), PATH).after == ALL


def test_unrelated_keys_are_kept_in_place() -> None:
    text = '{"data-root": "/srv/docker", "registry-mirrors": ["https://mirror.internal"], "debug": false}'
    merge = merge_daemon_json(text, Wanted(), PATH)
    assert (
        merge.after
        == """\
{
  "data-root": "/srv/docker",
  "registry-mirrors": [
    "https://mirror.internal"
  ],
  "debug": false,
  "live-restore": true,
  "userland-proxy": false,
  "log-opts": {
    "max-size": "10m",
    "max-file": "3"
  }
}
"""
    )
    assert merge.changes == ALL_CHANGES


def test_conflicting_values_are_replaced_and_user_rotation_kept() -> None:
    text = (
        '{\n  "live-restore": false,\n  "userland-proxy": true,\n'
        '  "log-opts": {"max-size": "100m", "labels": "app"}\n}\n'
    )
    merge = merge_daemon_json(text, Wanted(), PATH)
    assert (
        merge.after
        == """\
{
  "live-restore": true,
  "userland-proxy": false,
  "log-opts": {
    "max-size": "100m",
    "labels": "app",
    "max-file": "3"
  }
}
"""
    )
    assert merge.changes == (
        Change("live-restore", False, True),
        Change("userland-proxy", True, False),
        Change("log-opts/max-file", None, "3"),
    )
    assert [c.describe() for c in merge.changes] == [
        "live-restore: false -> true",
        "userland-proxy: true -> false",
        'log-opts/max-file: set to "3"',
    ]
    assert merge.notes == ('log-opts/max-size is "100m": your value, kept',)


def test_a_string_where_dockerd_wants_a_boolean_is_replaced() -> None:
    merge = merge_daemon_json(
        '{"live-restore": "true"}', Wanted(userland_proxy=None, log_max_size=None, log_max_file=None), PATH
    )
    assert merge.after == '{\n  "live-restore": true\n}\n'
    assert merge.changes == (Change("live-restore", "true", True),)


def test_already_configured_file_is_left_byte_for_byte() -> None:
    text = '{"live-restore":true,"userland-proxy":false,"log-opts":{"max-size":"50m","max-file":"3"}}'
    merge = merge_daemon_json(text, Wanted(), PATH)
    assert (merge.after, merge.changes, merge.changed, merge.diff()) == (text, (), False, "")


def test_other_log_driver_is_left_alone() -> None:
    merge = merge_daemon_json('{"log-driver": "journald"}', Wanted(), PATH)
    assert merge.after == '{\n  "log-driver": "journald",\n  "live-restore": true,\n  "userland-proxy": false\n}\n'
    assert merge.notes == ('log-driver is "journald": its own rotation or destination, left as it is',)


def test_skipped_keys_are_not_touched() -> None:
    merge = merge_daemon_json('{"live-restore": false}', Wanted(live_restore=None), PATH)
    assert (
        merge.after
        == """\
{
  "live-restore": false,
  "userland-proxy": false,
  "log-opts": {
    "max-size": "10m",
    "max-file": "3"
  }
}
"""
    )


def test_invalid_json_is_reported_not_rewritten() -> None:
    with pytest.raises(DaemonJsonError) as info:
        merge_daemon_json('{\n  "debug": true\n  "live-restore": false\n}\n', Wanted(), PATH)
    assert str(info.value) == (
        "/etc/docker/daemon.json: line 3, column 3: not valid JSON (Expecting ',' delimiter); dockerd cannot read "
        "it either: correct it, then run this command again (it is left as it is)"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  // keep containers up\n  "live-restore": false\n}\n', "line 2, column 3"),
        ('{\n  "debug": true, /* on */\n  "live-restore": false\n}\n', "line 2, column 18"),
        ('# docker settings\n{"debug": true}\n', "line 1, column 1"),
    ],
)
def test_comments_are_reported_not_rewritten(text: str, where: str) -> None:
    with pytest.raises(DaemonJsonError) as info:
        merge_daemon_json(text, Wanted(), PATH)
    assert str(info.value) == (
        f"/etc/docker/daemon.json: {where}: a comment; JSON has no comments and dockerd refuses this file: "
        "remove them, then run this command again (it is left as it is)"
    )


def test_wrong_shapes() -> None:
    with pytest.raises(DaemonJsonError) as top:
        merge_daemon_json('["live-restore"]', Wanted(), PATH)
    assert str(top.value) == "/etc/docker/daemon.json: expected a JSON object at the top, got a list"
    with pytest.raises(DaemonJsonError) as opts:
        merge_daemon_json('{"log-opts": {"max-file": 3}}', Wanted(), PATH)
    assert str(opts.value) == (
        '/etc/docker/daemon.json: log-opts: expected an object of strings (dockerd wants "3", not 3), '
        'got {"max-file": 3}'
    )
    with pytest.raises(DaemonJsonError) as driver:
        merge_daemon_json('{"log-driver": 1}', Wanted(), PATH)
    assert str(driver.value) == "/etc/docker/daemon.json: log-driver: expected a string, got a number"
