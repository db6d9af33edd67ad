"""Which official Python image satisfies a project's ``requires-python`` (PEP 440 specifiers, the subset that names
minor versions: ``>=3.14``, ``>3.12``, ``~=3.12``, ``==3.13.*``, ``<4.0``, ``!=3.12.*``). Pure."""

from __future__ import annotations

import re

__all__ = ["image_for", "satisfies"]

_SPEC_RE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\s*$")
_HIGHEST_MINOR = 30
_LATEST_PATCH = 10**6  # python:3.N-slim runs the newest 3.N.x


def _version(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts


def satisfies(minor: int, specifiers: str) -> bool | None:
    """Whether the image of Python 3.<minor> (its latest patch release) satisfies ``specifiers``; None when a
    specifier is not one this reads."""
    candidate = (3, minor, _LATEST_PATCH)
    for raw in specifiers.split(","):
        if not raw.strip():
            continue
        match = _SPEC_RE.match(raw)
        if match is None:
            return None
        op, text, star = match.groups()
        bound, width = _version(text), len(text.split("."))
        if star:  # ==3.12.* / !=3.12.*: the release prefix
            same = candidate[:width] == bound[:width]
            ok = same if op == "==" else not same if op == "!=" else None
        elif op == "~=":  # ~=3.12: >=3.12, ==3.*
            ok = candidate >= bound and candidate[: width - 1] == bound[: width - 1] if width >= 2 else None
        else:
            ok = {
                ">=": candidate >= bound,
                ">": candidate > bound,
                "<=": candidate <= bound,
                "<": candidate < bound,
                "==": candidate == bound,
                "===": candidate == bound,
                "!=": candidate != bound,
            }[op]
        if ok is None:
            return None
        if not ok:
            return False
    return True


def image_for(specifiers: str, default: str) -> str | None:
    """``python:3.N-slim`` when ``default`` (``python:3.M-slim``) does not satisfy ``specifiers``: the lowest 3.N
    above 3.M that does, else the highest below. None when the default fits or nothing can be told."""
    match = re.match(r"^python:3\.(\d+)-slim$", default)
    if match is None:
        return None
    current = int(match.group(1))
    if satisfies(current, specifiers) in (True, None):
        return None
    above = [m for m in range(current + 1, _HIGHEST_MINOR) if satisfies(m, specifiers)]
    below = [m for m in range(current - 1, 7, -1) if satisfies(m, specifiers)]
    chosen = above[0] if above else below[0] if below else None
    return None if chosen is None else f"python:3.{chosen}-slim"
