"""The migration of the schedules test app: nothing to migrate; it marks the release's order in the deploy."""

print("migrated")
