"""Rendering: config -> the files of a stack (compose.yaml, Traefik config, Dockerfile). Pure: no I/O but reading
the project."""
