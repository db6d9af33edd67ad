"""The unit tier's order: its few tests of a second or more go first, longest first. pytest-xdist hands tests out in
collection order, so a long test collected near the end (test_test_script, test_uvicorn_drain) kept one worker busy
while the other had nothing left; run first, they are balanced by the many short tests that follow."""

from __future__ import annotations

import pytest

# Node id prefixes, longest first (durations seen on a 2-core machine with 2 workers: 4 s down to 0.6 s).
SLOW_FIRST = (
    "tests/unit/test_test_script.py::test_the_whole_suite_runs_both_tiers_and_fails_when_either_fails",
    "tests/unit/test_cli_files.py::test_render_under_an_ascii_locale_writes_and_prints_utf8",
    "tests/unit/test_fuzz_config.py::test_bad_part_in_a_later_merged_file",
    "tests/unit/test_fuzz_config.py::test_bad_values_in_one_file",
    "tests/unit/test_fuzz_config.py::test_bad_text_in_one_file",
    "tests/unit/test_uvicorn_drain.py::test_a_stopping_task_keeps_serving_for_the_drain_then_stops_cleanly",
    "tests/unit/test_fuzz_render.py::test_hostile_strings_in_every_string_key",
    "tests/unit/test_config_hash.py::",
    "tests/unit/test_fuzz_config.py::test_bad_override_file",
    "tests/unit/test_cli_help.py::test_the_console_script_shows_the_help_at_80_columns",
    "tests/unit/test_ports.py::test_a_real_non_root_process_sees_a_free_privileged_port_as_free",
    "tests/unit/test_test_script.py::test_the_unit_tier_runs_alone_in_parallel_with_no_setup",
    "tests/unit/test_cli_render_status_completion.py::test_bash_completion_script_and_protocol",
)


def slow_rank(nodeid: str) -> int:
    """The position of a slow test in SLOW_FIRST, len(SLOW_FIRST) for every other test."""
    return next((i for i, prefix in enumerate(SLOW_FIRST) if nodeid.startswith(prefix)), len(SLOW_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: the other tests (and any integration test collected in the same run) keep their order.
    items.sort(key=lambda item: slow_rank(item.nodeid))
