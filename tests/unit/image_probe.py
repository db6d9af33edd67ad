"""What verify/image_contract.PROBE prints for an image: the fakes' answer, and the cases the unit tests build."""

from __future__ import annotations

import json


def probe_output(
    args: list[str],
    missing: frozenset[str] = frozenset(),
    uid: int = 1000,
    cwd: str = "/app",
    elsewhere: dict[str, str] | None = None,
) -> str:
    """PROBE's line for an image that has every program, path and module ``args`` ask for but those in ``missing``
    (``elsewhere``: missing programs found in a venv off the PATH)."""
    want = json.loads(args[0])
    return json.dumps(
        {
            "uid": uid,
            "cwd": cwd,
            "path": "/venv/bin:/usr/local/bin:/usr/bin:/bin",
            "programs": {p: None if p in missing else f"/venv/bin/{p}" for p in want["programs"]},
            "elsewhere": elsewhere or {},
            "paths": {p: p not in missing for p in want["paths"]},
            "modules": {m: m not in missing for m in want["modules"]},
        }
    )
