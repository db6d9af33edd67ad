"""Planning `composekit init`: from what detection found and the chosen template, the files to create (the
commented composekit.yaml, its JSON Schema, a Dockerfile, secrets, .gitignore lines) and the guidance to print.
The settings, notes and guidance are decided in scaffold/settings.py, the config text written by
scaffold/config_text.py. Reads only; the plan is written by scaffold/write.py."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config.load import parse_config
from ..config.model import CONFIG_FILENAME, Config
from ..config.project import DEFAULT_OUT_DIR
from ..config.schema import schema_json
from ..config.sources import DependencyStyle, Sources, detect_sources
from ..errors import TemplateError
from ..render.dockerfile import dockerignore, render_dockerfile
from .compose_file import read_compose_hints
from .config_text import render_config
from .detect import Placement, detect_layout, locate, ours_or_missing
from .settings import (
    HEALTH_COMMENT,
    Ask,
    InitSettings,
    choose_module,
    companion_sections,
    database_section,
    default_name,
    from_root,
    guidance,
    health_notes,
    python_image_choice,
    style_note,
    where_notes,
    with_domain,
)
from .templates import DEFAULT_TEMPLATE, SCHEMA_FILENAME, SECRETS_DIR, load_template

__all__ = ["InitPlan", "PlannedFile", "dockerfile_for", "plan_init"]


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the target directory, POSIX
    content: bytes
    mode: int | None = None
    keep_existing: bool = False  # never replaced, even with --force (a password a database already uses)
    merged: bool = False  # the existing file plus composekit's lines: written without --force


@dataclass(frozen=True)
class InitPlan:
    root: Path
    template: str
    module: str
    files: list[PlannedFile]
    notes: list[str] = field(default_factory=list)  # what was detected and decided
    guidance: list[str] = field(default_factory=list)  # what the user still has to do


def _missing_dependencies(root: Path) -> TemplateError:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8", errors="replace") if pyproject.is_file() else ""
    if "[tool.poetry" in text:
        fix = "run `poetry lock` to create poetry.lock"
    elif "[project]" in text:
        fix = "run `uv lock` to create uv.lock, or write a requirements.txt"
    else:
        fix = "write a requirements.txt"
    return TemplateError(
        f"init: {root} has no requirements.txt, poetry.lock or uv.lock (next to pyproject.toml) and its "
        "pyproject.toml lists no [project] dependencies, so "
        f"composekit cannot tell how to install the app's dependencies; {fix} and run `composekit init` again, "
        "or add your own Dockerfile"
    )


def plan_init(
    root: Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    module: str | None = None,
    name: str | None = None,
    domain: str | None = None,
    ask: Ask | None = None,
    password: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> InitPlan:
    """Every file `init` would write into ``root``, and why. Reads only."""
    if not root.is_dir():
        raise TemplateError(f"init: {root} is not a directory; create it first or pass an existing one")
    tmpl = load_template(template)
    layout = detect_layout(root)
    files: list[PlannedFile] = []
    notes: list[str] = []
    starter = layout.is_empty
    style: DependencyStyle | None
    placement: Placement | None = None
    if starter:
        notes.append(f"{root} has no app yet: copying the example app of template {template!r}")
        files.extend(PlannedFile(rel, content) for rel, content in tmpl.files())
        style = _starter_dependencies(files)
        settings = InitSettings(
            name=name or default_name(root),
            domain="",
            module=tmpl.config.app.module,
            module_note=f"the example app of template {template!r}",
            health_path=tmpl.config.app.health_path,
            health_note=HEALTH_COMMENT,
            migrate=tmpl.config.migrate.command,
            volumes=dict(tmpl.config.app.volumes),
            database=database_section(tmpl, name or default_name(root)),
            template=template,
            **companion_sections(tmpl, starter=True),
        )
        context = root
    else:
        app, module_note = choose_module(layout, module, ask)
        placement = locate(root, app)
        context = placement.context
        style = placement.dependencies
        if style is None and placement.dockerfile is None:
            raise _missing_dependencies(context)
        notes.append(f"module {app.module}: {module_note}")
        own = placement.dockerfile is not None and not placement.dockerfile_is_generated
        notes.extend(where_notes(root, app, own_dockerfile=own))
        notes.append(placement.migration.note)
        compose_hints = read_compose_hints(root, database=tmpl.config.database is not None)
        notes.extend(compose_hints.notes)
        health = placement.health.best
        notes.extend(health_notes(placement))
        python_image, python_note = python_image_choice(placement)
        if python_note:
            notes.append(python_note)
        settings = InitSettings(
            name=name or default_name(root),
            domain="",
            module=app.module,
            module_note=module_note,
            health_path=health.path if health else "/health",
            health_note=f"found in {from_root(app, health.file)}; " + HEALTH_COMMENT if health else HEALTH_COMMENT,
            migrate=placement.migration.command,
            volumes={},
            database=database_section(tmpl, name or default_name(root)),
            template=template,
            path=app.path,
            workdir=app.workdir,
            python_image=python_image,
            python_note=python_note,
            dockerfile=_production_dockerfile(placement),
            suggested_processes=compose_hints.processes,
            **companion_sections(tmpl, starter=False),
        )
    settings = with_domain(settings, domain)
    config_text = render_config(settings)
    config = parse_config(yaml.safe_load(config_text))  # what init writes, `up` must accept

    files.append(PlannedFile(CONFIG_FILENAME, config_text.encode()))
    files.append(PlannedFile(SCHEMA_FILENAME, schema_json().encode()))
    secret_paths = settings.secret_files
    in_context = "" if settings.path == "." else f"{settings.path}/"
    own_dockerfile = placement.dockerfile if placement is not None else layout.dockerfile
    generated = placement.dockerfile_is_generated if placement is not None else False
    if own_dockerfile is None or generated:
        assert style is not None
        sources = detect_sources(context, settings.workdir, settings.module) if not starter else Sources(style)
        assert sources is not None
        notes.append(f"dependencies: {style_note(sources, context)} -> {in_context}Dockerfile")
        files.append(PlannedFile(f"{in_context}Dockerfile", dockerfile_for(style, config, sources).encode()))
    else:
        kept = own_dockerfile.name
        if settings.dockerfile:
            kept += ", your production Dockerfile, rather than Dockerfile (app/dockerfile)"
        notes.append(
            f"kept your {in_context}{kept}; composekit builds the app with it and runs gunicorn in the image: "
            "`up` checks right after the build that it has gunicorn, a uvicorn worker (uvicorn-worker, or uvicorn's "
            f"own) and {settings.module.split(':')[0]}"
        )
    # The secrets directory is at the root: only a build context at the root could see it.
    ignored = secret_paths if settings.path == "." else []
    if ours_or_missing(context / ".dockerignore"):
        files.append(PlannedFile(f"{in_context}.dockerignore", dockerignore(ignored).encode()))
    else:
        # The generated Dockerfile of a workspace member copies the member alone: secrets at the root never reach it.
        remind = ignored and settings.workdir == "."
        notes.append(
            f"kept your {in_context}.dockerignore" + (f" (make sure it lists {SECRETS_DIR}/)" if remind else "")
        )
    gitignore = _gitignore(root)
    if gitignore is not None:
        files.append(gitignore)
    if secret_paths:
        files.append(PlannedFile(f"{SECRETS_DIR}/.gitignore", b"# Secrets stay out of git.\n*\n!.gitignore\n"))
    for path in secret_paths:
        # 0600: only the account that deploys reads it. No container reads this file: composekit reads it and hands
        # the password to Compose (a secret with `environment:`) or Swarm, which copy it into the containers.
        files.append(PlannedFile(path, (password() + "\n").encode(), mode=0o600, keep_existing=True))
    return InitPlan(
        root=root,
        template=template,
        module=settings.module,
        files=files,
        notes=notes,
        guidance=guidance(settings, placement, starter),
    )


# composekit's output directory (config/project.py DEFAULT_OUT_DIR), as .gitignore lines that already ignore it.
_OUT_LINE = f"/{DEFAULT_OUT_DIR}/"
_OUT_LINES = {DEFAULT_OUT_DIR, f"{DEFAULT_OUT_DIR}/", f"/{DEFAULT_OUT_DIR}", _OUT_LINE}
_OUT_BLOCK = (
    f"# composekit's rendered stack (`composekit render` writes it again). To commit it for `composekit render\n"
    f"# --check` in CI, remove the next line.\n{_OUT_LINE}\n"
)


def _gitignore(root: Path) -> PlannedFile | None:
    """.gitignore with composekit's output directory in it: created, or the user's with the line appended (their own
    lines untouched); None when it already ignores it."""
    path = root / ".gitignore"
    if not path.is_file():
        return PlannedFile(".gitignore", _OUT_BLOCK.encode(), merged=True)
    text = path.read_bytes()
    if any(line.strip() in _OUT_LINES for line in text.decode("utf-8", errors="replace").splitlines()):
        return None
    separator = b"" if not text or text.endswith(b"\n") else b"\n"
    return PlannedFile(".gitignore", text + separator + _OUT_BLOCK.encode(), merged=True)


def _starter_dependencies(files: list[PlannedFile]) -> DependencyStyle:
    names = {f.path for f in files}
    if "uv.lock" in names:
        return DependencyStyle.UV
    if "poetry.lock" in names:
        return DependencyStyle.POETRY
    return DependencyStyle.PIP


def _production_dockerfile(placement: Placement) -> str | None:
    """app/dockerfile when locate() chose a production Dockerfile (Dockerfile.prod, ...), else None (the default)."""
    chosen = placement.dockerfile
    if chosen is None or chosen.name == "Dockerfile" or placement.dockerfile_is_generated:
        return None
    return chosen.name


def dockerfile_for(style: DependencyStyle, config: Config, sources: Sources | None = None) -> str:
    """The same Dockerfile `composekit render` generates for this config, so both agree."""
    return render_dockerfile(
        style,
        python_image=config.images.python,
        module=config.app.module,
        port=config.app.port,
        volume_paths=list(config.app.volumes.values()),
        sources=sources,
    )
