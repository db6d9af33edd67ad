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
# Rendered verbatim from the package in mode: swarm: checked against the source, not copied into tests/golden.
VERBATIM_FILES = {
    "swarm/socket_proxy.py": ("composekit.runtime", "socket_proxy.py"),
    "swarm/gunicorn.conf.py": ("composekit.runtime", "gunicorn_conf.py"),
    "swarm/uvicorn_drain.py": ("composekit.runtime", "uvicorn_drain.py"),
}


def assert_matches_golden(stack: RenderedStack, name: str) -> None:
    golden = GOLDEN_ROOT / name
    for file, (package, source) in VERBATIM.items():
        if stack.configs:  # compose mode
            assert stack.configs[file] == resources.files(package).joinpath(source).read_text()
    for file, (package, source) in VERBATIM_FILES.items():
        if file in stack.files:
            assert stack.files[file] == resources.files(package).joinpath(source).read_text()
    expected = {file: content for file, content in stack.files.items() if file not in VERBATIM_FILES}
    if os.environ.get("COMPOSEKIT_UPDATE_GOLDEN") == "1":
        shutil.rmtree(golden, ignore_errors=True)
        golden.mkdir(parents=True)
        for file, content in expected.items():
            (golden / file).parent.mkdir(parents=True, exist_ok=True)
            (golden / file).write_text(content)
    assert sorted(expected) == sorted(p.relative_to(golden).as_posix() for p in golden.rglob("*") if p.is_file())
    for file, content in expected.items():
        assert content == (golden / file).read_text(), (
            f"{file} differs from {golden} (COMPOSEKIT_UPDATE_GOLDEN=1 rewrites)"
        )
