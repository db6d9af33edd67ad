"""composekit: deploy a FastAPI app to one server with Docker Compose, Traefik and ACME.

The library behind the `composekit` command; the CLI only parses options and calls these::

    from composekit import load_project, render_stack, up

    project = load_project((Path("composekit.yaml"),))
    print(render_stack(project).compose)
    up(project, timeout=180)
"""

from __future__ import annotations

from .config.load import load_config, parse_config
from .config.model import Config
from .config.project import Project, load_project
from .config.schema import config_schema
from .deploy import down, status, up
from .errors import (
    BuildError,
    ComposekitError,
    ConfigError,
    DockerError,
    HealthTimeoutError,
    HttpCheckError,
    MigrationError,
    PortInUseError,
    TemplateError,
    UserError,
)
from .render.stack import RenderedStack, check_stack, render_stack, write_stack
from .verify.checks import CheckResult, Report
from .verify.doctor import DoctorOptions, run_doctor
from .verify.smoke import SmokeOptions, smoke

__version__ = "0.1.0"

__all__ = [
    "BuildError",
    "CheckResult",
    "ComposekitError",
    "Config",
    "ConfigError",
    "DockerError",
    "DoctorOptions",
    "HealthTimeoutError",
    "HttpCheckError",
    "MigrationError",
    "PortInUseError",
    "Project",
    "RenderedStack",
    "Report",
    "SmokeOptions",
    "TemplateError",
    "UserError",
    "__version__",
    "check_stack",
    "config_schema",
    "down",
    "load_config",
    "load_project",
    "parse_config",
    "render_stack",
    "run_doctor",
    "smoke",
    "status",
    "up",
    "write_stack",
]
