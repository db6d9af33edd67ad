"""Scaffolding of `composekit init`: detect an app (detect.py), pick a template (templates.py), decide the settings
(settings.py), plan the files (plan.py, config_text.py), write them (write.py). Everything but write.py only reads."""

from __future__ import annotations

from .detect import Layout, detect_layout, find_asgi_apps, find_health_path
from .plan import InitPlan, PlannedFile, plan_init
from .templates import DEFAULT_TEMPLATE, SCHEMA_FILENAME, Template, list_templates, load_template
from .write import WriteResult, write_plan

__all__ = [
    "DEFAULT_TEMPLATE",
    "SCHEMA_FILENAME",
    "InitPlan",
    "Layout",
    "PlannedFile",
    "Template",
    "WriteResult",
    "detect_layout",
    "find_asgi_apps",
    "find_health_path",
    "list_templates",
    "load_template",
    "plan_init",
    "write_plan",
]
