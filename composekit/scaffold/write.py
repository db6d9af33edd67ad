"""Writing the plan of `composekit init`: the one function of scaffold/ that writes. It refuses to replace a file
that differs from the plan unless ``force`` is set."""

from __future__ import annotations

from dataclasses import dataclass

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
        target.write_bytes(planned.content)
        if planned.mode is not None:
            target.chmod(planned.mode)
    return WriteResult(written=written, unchanged=unchanged, kept=kept)
