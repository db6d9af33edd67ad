"""Writing the plan of `composekit init`: the one function of scaffold/ that writes. It refuses to replace a file
that differs from the plan unless ``force`` is set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import TemplateError
from .plan import InitPlan, PlannedFile
from .templates import SECRETS_DIR

__all__ = ["WriteResult", "write_plan"]


@dataclass(frozen=True)
class WriteResult:
    written: list[str]
    unchanged: list[str]
    kept: list[str]


def write_plan(plan: InitPlan, *, force: bool = False, pretend: bool = False) -> WriteResult:
    """Write the planned files; refuse (writing nothing) when one exists with other content and not ``force``."""
    root = plan.root
    conflicts: list[str] = []
    written: list[str] = []
    unchanged: list[str] = []
    kept: list[str] = []
    todo: list[PlannedFile] = []
    for planned in plan.files:
        target = root / planned.path
        if target.is_file() and planned.keep_existing:
            kept.append(planned.path)
        elif target.is_file() and target.read_bytes() == planned.content:
            unchanged.append(planned.path)
        elif target.exists() and not target.is_file():
            raise TemplateError(f"init: {target} exists and is not a file; move it away and run init again")
        else:
            if target.exists() and not planned.merged:
                conflicts.append(planned.path)
            todo.append(planned)
    if conflicts and not force:
        raise TemplateError(
            f"init: {', '.join(conflicts)} already exist{'s' if len(conflicts) == 1 else ''} in {root} and "
            "would change; nothing was written. Pass --force to overwrite "
            f"{'it' if len(conflicts) == 1 else 'them'} (review with `git diff` afterwards)"
        )
    for planned in todo:
        written.append(planned.path)
        if pretend:
            continue
        target = root / planned.path
        if planned.path.startswith(f"{SECRETS_DIR}/"):
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        if planned.mode is None:
            target.write_bytes(planned.content)
        else:
            _write_with_mode(target, planned.content, planned.mode)
    return WriteResult(written=written, unchanged=unchanged, kept=kept)


def _write_with_mode(target: Path, content: bytes, mode: int) -> None:
    """Write ``content`` into a new file that has ``mode`` from its creation (whatever the umask), then put it in
    place: a secret is never readable by others, not even between its creation and a chmod."""
    tmp = target.with_name(f".{target.name}.composekit.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, target)
