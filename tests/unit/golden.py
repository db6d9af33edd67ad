"""Golden-file comparison for rendered stacks. `COMPOSEKIT_UPDATE_GOLDEN=1` rewrites the files."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from composekit.render.stack import RenderedStack

GOLDEN_ROOT = Path(__file__).resolve().parents[1] / "golden"
# Shipped verbatim from the package inside compose.yaml (RenderedStack.configs): checked against its source.
VERBATIM = {
    "gunicorn.conf.py": ("composekit.runtime", "gunicorn_conf.py"),
}


def assert_matches_golden(stack: RenderedStack, name: str) -> None:
    golden = GOLDEN_ROOT / name
    for file, (package, source) in VERBATIM.items():
        assert stack.configs[file] == resources.files(package).joinpath(source).read_text()
    expected = dict(stack.files)
    if os.environ.get("COMPOSEKIT_UPDATE_GOLDEN") == "1":
        shutil.rmtree(golden, ignore_errors=True)
        golden.mkdir(parents=True)
        for file, content in expected.items():
            (golden / file).write_text(content)
    assert sorted(expected) == sorted(p.name for p in golden.iterdir())
    for file, content in expected.items():
        assert content == (golden / file).read_text(), (
            f"{file} differs from {golden} (COMPOSEKIT_UPDATE_GOLDEN=1 rewrites)"
        )
