"""The migration of the Swarm test app: fails when FAIL_MIGRATION sits beside it."""

import sys
from pathlib import Path

if (Path(__file__).parent / "FAIL_MIGRATION").exists():
    print("migration failed on purpose (FAIL_MIGRATION)")
    sys.exit(3)
print("migrated")
