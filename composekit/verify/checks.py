"""The result of a check (`smoke`, `doctor`): ok / warn / fail, what was seen and how to fix it.

A report passes when no check failed; a warning is shown but does not fail it. The model only: the CLI draws it
(cli/display.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CheckResult", "Report", "Status", "render_json"]


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    """One check. ``detail`` says what was seen; ``fix`` the most likely remedy (empty when ok)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @classmethod
    def ok(cls, name: str, detail: str) -> CheckResult:
        return cls(name, Status.OK, detail)

    @classmethod
    def warn(cls, name: str, detail: str, fix: str) -> CheckResult:
        return cls(name, Status.WARN, detail, fix)

    @classmethod
    def fail(cls, name: str, detail: str, fix: str) -> CheckResult:
        return cls(name, Status.FAIL, detail, fix)

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    """The checks of one run of a command, in the order they ran."""

    command: str
    subject: str  # what was checked: a URL, a machine
    checks: tuple[CheckResult, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    def count(self, status: Status) -> int:
        return sum(c.status is status for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s.value}" for s in Status)
        verdict = "passed" if self.passed else "FAILED"
        return f"{self.command} {verdict}: {counts}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "subject": self.subject,
            "passed": self.passed,
            "summary": {s.value: self.count(s) for s in Status},
            **({"context": self.context} if self.context else {}),
            "checks": [c.as_dict() for c in self.checks],
        }


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"
