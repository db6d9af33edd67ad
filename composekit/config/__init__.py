"""Configuration: the pydantic model of composekit.yaml, loading and merging files, the project on disk, the JSON Schema."""
