"""The `composekit` command: typer commands that parse options, call the library and print.

Each module registers its commands on the one app of cli/app.py when imported; importing this package imports them
all, in the order `composekit --help` lists them.
"""

from __future__ import annotations

# The order of these imports is the order of `composekit --help`.
# isort: off
from . import render  # noqa: F401  (render)
from . import stack  # noqa: F401  (up, down)
from . import observe  # noqa: F401  (status, logs, config)
from . import releases  # noqa: F401  (releases, rollback)
from . import backup  # noqa: F401  (backup, backups, restore)
from . import checks  # noqa: F401  (smoke, doctor)
from . import engine  # noqa: F401  (engine configure)
from . import edge  # noqa: F401  (edge status logs up down)
from . import scaffold  # noqa: F401  (init, schema)
from .app import app, main

# isort: on

__all__ = ["app", "main"]
