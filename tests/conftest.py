from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "stacks"


@pytest.fixture
def repo_root() -> Path:
    return REPO
