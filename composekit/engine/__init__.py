"""The engine: the one Docker module and the deploy steps that drive it (build, migrate, start, wait, down, status)."""
