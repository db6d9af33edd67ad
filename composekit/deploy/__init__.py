"""The library's up(): the whole deploy as `composekit up` does it, engine steps then smoke; and rollback().

down() and status() are the engine's (composekit.engine.steps), re-exported here for the public API.
"""

from __future__ import annotations

from ..engine.releases import ReleaseRow, list_releases
from ..engine.status import status
from ..engine.steps import down
from .compose import rollback_on_error_setting, up
from .releases import rollback
from .result import UpResult

__all__ = ["ReleaseRow", "UpResult", "down", "list_releases", "rollback", "rollback_on_error_setting", "status", "up"]
