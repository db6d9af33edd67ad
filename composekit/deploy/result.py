"""UpResult: what up() returns in either mode."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.docker import ContainerInfo
from ..engine.switch import SwitchResult
from ..verify.checks import Report

__all__ = ["UpResult"]


@dataclass(frozen=True)
class UpResult:
    """``smoke`` is the last smoke report (None when up ran with ``smoke=False``)."""

    url: str
    containers: list[ContainerInfo]
    smoke: Report | None = None
    switch: SwitchResult | None = None

    @property
    def passed(self) -> bool:
        """The stack is healthy and routed (up raises otherwise) and smoke, when it ran, passed."""
        return self.smoke is None or self.smoke.passed
