"""Run the installed console script `composekit` (next to sys.executable) on the code under test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import composekit

COMPOSEKIT = Path(sys.executable).parent / "composekit"


def script_env(**extra: str) -> dict[str, str]:
    """The console script's environment: the composekit this test imported first on its path (an editable install
    of another checkout, or an installed copy, would otherwise answer), wide enough that no help line wraps."""
    source = str(Path(composekit.__file__).resolve().parents[1])
    path = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "250", "TERMINAL_WIDTH": "250", "NO_COLOR": "1", **extra}


def script() -> Path:
    if not COMPOSEKIT.exists():
        pytest.fail(
            f"{COMPOSEKIT} is missing: the console script `composekit` must be installed next to {sys.executable} "
            "(pip install -e . in this venv)"
        )
    return COMPOSEKIT


def run_script(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`composekit ARGS`; output as bytes, so a test sees exactly what was written (and in which encoding)."""
    return subprocess.run([str(script()), *args], capture_output=True, env=env or script_env(), cwd=cwd, timeout=60)
