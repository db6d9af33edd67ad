"""The scheduled job: appends the time it was scheduled for and the release's version to the ticks file."""

import os
from pathlib import Path

from .version import VERSION

line = f"{os.environ['COMPOSEKIT_SCHEDULED_AT']} {VERSION}"
with Path("/var/lib/ticks/ticks.txt").open("a") as f:
    f.write(line + "\n")
print(f"tick {line}")
