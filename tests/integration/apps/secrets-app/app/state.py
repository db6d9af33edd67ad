"""migrate/state_command: prints a short hash of SECRET_KEY, so the release records what the command saw."""

from __future__ import annotations

from .secret_hashes import hashes

if __name__ == "__main__":
    print("secret-" + hashes().get("SECRET_KEY", "missing")[:12])
