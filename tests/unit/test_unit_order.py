"""tests/unit/conftest.py runs the unit tier's slow tests first: every entry of its list still names a test, and the
collected order starts with them, longest first."""

from __future__ import annotations

import re

import pytest

from .conftest import SLOW_FIRST, slow_rank
from .test_test_script import REPO


@pytest.mark.parametrize("prefix", SLOW_FIRST)
def test_every_slow_entry_names_a_test(prefix: str) -> None:
    path, _, name = prefix.partition("::")
    source = (REPO / path).read_text(encoding="utf-8")
    if name:
        assert re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE), f"{prefix}: no such test (renamed?)"
    else:
        assert re.search(r"^def test_", source, re.MULTILINE), f"{path}: no test in it"


def test_the_collected_order_starts_with_the_slow_tests(request: pytest.FixtureRequest) -> None:
    ranks = [slow_rank(item.nodeid) for item in request.session.items]
    assert ranks == sorted(ranks)
    assert (
        slow_rank("tests/unit/test_test_script.py::test_the_whole_suite_runs_both_tiers_and_fails_when_either_fails")
        == 0
    )
    assert slow_rank(
        "tests/unit/test_config_hash.py::test_a_changed_env_file_changes_the_hash_an_unchanged_one_keeps_it"
    ) == (SLOW_FIRST.index("tests/unit/test_config_hash.py::"))
    assert slow_rank("tests/unit/test_layout.py::test_every_import_points_down_the_flow") == len(SLOW_FIRST)
