"""Configuration: the pydantic model of composekit.yaml (model.py; the checks of `domain`, `www` and `edge` in
domains.py, the sections but app/ in sections.py, the constrained types and patterns in fields.py, the rules of the
environment variables in environment.py, the Docker engine addresses in ssh_url.py, the secret heuristics and
redaction in redact.py), reading and merging files (load.py), the files on disk a config names (project.py), what the
app directory holds (sources.py), the override file's shape (override.py) and the JSON Schema (schema.py). The names
other packages use are here."""

from __future__ import annotations

from .environment import APP_VARIABLES, DATABASE_VARIABLES, WORKER_VARIABLES
from .fields import parse_memory
from .load import load_config, parse_config, read_yaml
from .model import CONFIG_FILENAME, DATABASE_VOLUME, OVERRIDE_FILENAME, Config
from .project import Project, load_project
from .redact import REDACTED
from .schema import config_schema, schema_json
from .sections import SmokeCheck
from .sources import DependencyStyle, detect_dependencies

__all__ = [
    "APP_VARIABLES",
    "CONFIG_FILENAME",
    "DATABASE_VARIABLES",
    "DATABASE_VOLUME",
    "OVERRIDE_FILENAME",
    "REDACTED",
    "WORKER_VARIABLES",
    "Config",
    "DependencyStyle",
    "Project",
    "SmokeCheck",
    "config_schema",
    "detect_dependencies",
    "load_config",
    "load_project",
    "parse_config",
    "parse_memory",
    "read_yaml",
    "schema_json",
]
