"""The age of the last verified backup as a check (`smoke` when backups/ is configured, `status` always): warn past
backups/warn_hours, fail past backups/fail_hours or when there is none (engine/backup_manifest.py age_check)."""

from __future__ import annotations

from datetime import UTC, datetime

from ..config.model import Config
from ..config.sections import Backups
from ..engine.backup import list_backups
from ..engine.backup_manifest import BackupInfo, age_check, latest_verified
from ..engine.docker import Docker
from .checks import CheckResult, Status

__all__ = ["CHECK", "backup_age", "backup_age_result"]

CHECK = "backup age"


def backup_age_result(backups: list[BackupInfo], settings: Backups, now: datetime) -> CheckResult:
    """The check from the backups listed: only verified ones count."""
    found = age_check(latest_verified(backups), now, settings.warn_hours, settings.fail_hours)
    failed = [b.id for b in backups if b.status == "failed"]
    detail = found.detail + (f"; failed backups: {', '.join(failed[-3:])}" if failed else "")
    fix = "run `composekit backup` (docs/backups.md); a failed one says why in `composekit backups`"
    status = Status(found.status)
    return CheckResult(CHECK, status, detail, "" if status is Status.OK else fix)


def backup_age(config: Config, docker: Docker, now: datetime | None = None) -> CheckResult | None:
    """The check when the config sets backups: (None when it does not: backups are not configured)."""
    if config.backups is None:
        return None
    return backup_age_result(list_backups(config, docker), config.backups, now or datetime.now(UTC))
