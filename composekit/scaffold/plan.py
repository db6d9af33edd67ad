"""Planning `composekit init`: from what detection found and the chosen template, the files to create (the
commented composekit.yaml, its JSON Schema, a Dockerfile, secrets, .gitignore lines) and the guidance to print.
Reads only; the plan is written by scaffold/write.py."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..config.load import parse_config
from ..config.model import (
    CONFIG_FILENAME,
    DEFAULT_POSTGRES_IMAGE,
    DEFAULT_PYTHON_IMAGE,
    App,
    Config,
    check_value,
)
from ..config.project import DEFAULT_OUT_DIR, DependencyStyle, Sources, detect_sources
from ..config.schema import schema_json
from ..errors import TemplateError
from ..render.dockerfile import dockerignore, render_dockerfile
from .detect import AppLocation, Layout, Placement, detect_layout, locate, ours_or_missing
from .python_version import image_for
from .templates import DEFAULT_TEMPLATE, SCHEMA_FILENAME, SECRETS_DIR, Template, load_template

__all__ = ["InitPlan", "PlannedFile", "dockerfile_for", "plan_init", "render_config"]


DB_PASSWORD_FILE = f"{SECRETS_DIR}/db_password"


Ask = Callable[[str, list[str]], str]


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


@dataclass(frozen=True)
class _Settings:
    name: str
    domain: str
    module: str
    module_note: str
    health_path: str
    health_note: str
    migrate: str | tuple[str, ...] | None
    migrate_note: str
    volumes: dict[str, str]
    database: dict[str, str] | None
    template: str
    path: str = "."
    workdir: str = "."
    python_image: str | None = None  # when the default image does not satisfy the project's requires-python
    python_note: str = ""


def _default_name(root: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", root.resolve().name.lower()).strip("-_")
    return name or "app"


def _checked(value: str, option: str, check: Callable[[Any], Any]) -> str:
    try:
        check(value)
    except ValueError as exc:
        raise TemplateError(f"init: {option}: {exc}") from None
    return value


def _location(layout: Layout, module: str) -> AppLocation:
    """Where ``module`` lives: the found app of that name, else the one place every found app shares, else the root."""
    for app in layout.apps:
        if app.module == module:
            return app
    places = {(a.path, a.workdir, a.imports) for a in layout.apps}
    if len(places) == 1:
        path, workdir, imports = places.pop()
        return AppLocation(module, "", path, workdir, imports)
    return AppLocation(module, "", ".", ".", ".")


def _choose_module(layout: Layout, module: str | None, ask: Ask | None) -> tuple[AppLocation, str]:
    if module is not None:
        chosen = _checked(module, "--module", lambda v: check_value(App, "module", v))
        return _location(layout, chosen), "from --module"
    apps = layout.apps
    if len(apps) == 1:
        kind = "the FastAPI app factory" if apps[0].module.endswith("()") else "the FastAPI app"
        return apps[0], f"found {kind} in {apps[0].file}"
    where = layout.root
    if ask is not None:
        if apps:
            answer = ask("Several FastAPI apps found; which one does gunicorn serve?", [a.module for a in apps])
        else:
            answer = ask(
                f"No `app = FastAPI(...)` found in {where}; which ASGI app does gunicorn serve "
                "(package.module:attribute)?",
                [],
            )
        answer = _checked(answer, "module", lambda v: check_value(App, "module", v))
        return _location(layout, answer), "as answered"
    if apps:
        raise TemplateError(
            f"init: found several FastAPI apps in {where}: {', '.join(a.module for a in apps)}; "
            f"pass the one to serve with --module, e.g. --module {apps[0].module}"
        )
    raise TemplateError(
        f"init: no FastAPI app found in {where} (looked for a module-level `app = FastAPI(...)` or a function "
        "returning one in its .py files) and stdin is not a terminal to ask; pass --module package.module:attribute, "
        "e.g. --module app.main:app"
    )


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
        settings = _Settings(
            name=name or _default_name(root),
            domain="",
            module=tmpl.config.app.module,
            module_note=f"the example app of template {template!r}",
            health_path=tmpl.config.app.health_path,
            health_note=_HEALTH_COMMENT,
            migrate=tmpl.config.migrate.command,
            migrate_note="the example app's migration",
            volumes=dict(tmpl.config.app.volumes),
            database=_database_section(tmpl, name or _default_name(root)),
            template=template,
        )
        context = root
    else:
        app, module_note = _choose_module(layout, module, ask)
        placement = locate(root, app)
        context = placement.context
        style = placement.dependencies
        if style is None and placement.dockerfile is None:
            raise _missing_dependencies(context)
        notes.append(f"module {app.module}: {module_note}")
        notes.extend(_where_notes(root, app))
        notes.append(placement.migration.note)
        health = placement.health.best
        notes.extend(_health_notes(placement))
        python_image, python_note = _python_image(placement)
        if python_note:
            notes.append(python_note)
        settings = _Settings(
            name=name or _default_name(root),
            domain="",
            module=app.module,
            module_note=module_note,
            health_path=health.path if health else "/health",
            health_note=f"found in {_in(app, health.file)}; " + _HEALTH_COMMENT if health else _HEALTH_COMMENT,
            migrate=placement.migration.command,
            migrate_note=placement.migration.note,
            volumes={},
            database=_database_section(tmpl, name or _default_name(root)),
            template=template,
            path=app.path,
            workdir=app.workdir,
            python_image=python_image,
            python_note=python_note,
        )
    settings = _with_domain(settings, domain)
    config_text = render_config(settings)
    config = parse_config(yaml.safe_load(config_text))  # what init writes, `up` must accept

    files.append(PlannedFile(CONFIG_FILENAME, config_text.encode()))
    files.append(PlannedFile(SCHEMA_FILENAME, schema_json().encode()))
    secret_paths = [DB_PASSWORD_FILE] if settings.database else []
    in_context = "" if settings.path == "." else f"{settings.path}/"
    own_dockerfile = placement.dockerfile if placement is not None else layout.dockerfile
    generated = placement.dockerfile_is_generated if placement is not None else False
    if own_dockerfile is None or generated:
        assert style is not None
        sources = detect_sources(context, settings.workdir, settings.module) if not starter else Sources(style)
        assert sources is not None
        notes.append(f"dependencies: {_style_note(sources, context)} -> {in_context}Dockerfile")
        files.append(PlannedFile(f"{in_context}Dockerfile", dockerfile_for(style, config, sources).encode()))
    else:
        notes.append(f"kept your {in_context}Dockerfile; composekit builds the app with it")
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
    if settings.database:
        files.append(PlannedFile(f"{SECRETS_DIR}/.gitignore", b"# Secrets stay out of git.\n*\n!.gitignore\n"))
        # 0600: only the account that deploys reads it. No container reads this file: composekit reads it and hands
        # the password to Compose (a secret with `environment:`) or Swarm, which copy it into the containers.
        files.append(PlannedFile(DB_PASSWORD_FILE, (password() + "\n").encode(), mode=0o600, keep_existing=True))
    return InitPlan(
        root=root,
        template=template,
        module=settings.module,
        files=files,
        notes=notes,
        guidance=_guidance(settings, placement, starter),
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


def _python_image(placement: Placement) -> tuple[str | None, str]:
    if placement.requires_python is None:
        return None, ""
    spec, where = placement.requires_python
    image = image_for(spec, DEFAULT_PYTHON_IMAGE)
    if image is None:
        return None, ""
    return (
        image,
        f"requires-python {spec!r} ({where}): {DEFAULT_PYTHON_IMAGE} does not satisfy it: images/python {image}",
    )


_HEALTH_COMMENT = "must answer 200 to GET: the healthcheck and Traefik use it"


def _in(app: AppLocation, file: str) -> str:
    """A file of the import root, named from the repository root."""
    return file if app.imports == "." else f"{app.imports}/{file}"


def _where_notes(root: Path, app: AppLocation) -> list[str]:
    if app.path == "." and app.workdir == "." and app.imports == ".":
        return []
    out = []
    if app.path != ".":
        out.append(f"app/path {app.path}: the project that declares the dependencies (the build context)")
    if app.workdir != ".":
        out.append(
            f"app/workdir {app.workdir}: the app's member, where it runs and its imports start "
            f"(the lock file is in {app.path if app.path != '.' else 'the root'})"
        )
    if app.imports != app.member:
        out.append(f"imports start in {app.imports} (a src/ layout): the image puts it on PYTHONPATH")
    return out


def _health_notes(placement: Placement) -> list[str]:
    scan, app = placement.health, placement.app
    best = scan.best
    out = []
    if best is not None:
        out.append(f"health route GET {best.path}: found in {_in(app, best.file)} line {best.line}, prefixes composed")
    for u in scan.unresolved:
        out.append(
            f"health route {u.route!r} found, but its prefix `{u.expression}` ({_in(app, u.file)} line {u.line}"
            + (f", below {u.above!r}" if u.above else "")
            + ") cannot be read statically"
        )
    if best is None and not scan.unresolved:
        out.append("no health route found (a GET route whose path names health, healthz, ready, live or ping)")
    return out


def _style_note(sources: Sources, context: Path) -> str:
    if sources.style is DependencyStyle.PIP:
        return f"pip ({sources.requirements})"
    if sources.style is DependencyStyle.UV and sources.workspace_members:
        package = f", package {sources.package}" if sources.package else ""
        return f"uv (workspace uv.lock{package}, synced before the code is copied)"
    note = f"{sources.style.value} ({_STYLE_NOTES[sources.style]})"
    if sources.style is DependencyStyle.PYPROJECT and (context / "pdm.lock").is_file():
        note += "; pdm.lock is not read: `pdm export --prod -o requirements.txt` pins the versions it holds"
    return note


_STYLE_NOTES = {
    DependencyStyle.PIP: "requirements.txt",
    DependencyStyle.POETRY: "pyproject.toml + poetry.lock, exported to requirements in a build stage",
    DependencyStyle.UV: "uv.lock, synced before the code is copied",
    DependencyStyle.PYPROJECT: "pyproject.toml [project].dependencies, not locked: versions resolved at build time",
}


def _starter_dependencies(files: list[PlannedFile]) -> DependencyStyle:
    names = {f.path for f in files}
    if "uv.lock" in names:
        return DependencyStyle.UV
    if "poetry.lock" in names:
        return DependencyStyle.POETRY
    return DependencyStyle.PIP


def _database_section(tmpl: Template, project: str) -> dict[str, str] | None:
    """The template's database, named after the project."""
    db = tmpl.config.database
    if db is None:
        return None
    ident = re.sub(r"[^a-z0-9_]", "_", project.lower())[:63]
    ident = ident if re.match(r"^[a-z_]", ident) else f"_{ident}"[:63]
    return {"engine": db.engine, "name": ident, "user": ident, "password_file": DB_PASSWORD_FILE}


def _with_domain(settings: _Settings, domain: str | None) -> _Settings:
    if domain is not None:
        return replace(settings, domain=_checked(domain, "--domain", lambda v: check_value(Config, "domain", v)))
    return replace(settings, domain=f"{settings.name.replace('_', '-')}.example.com")


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


# the commented composekit.yaml ------------------------------------------------------------------


def _scalar(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _line(key: str, value: Any, comment: str = "", indent: int = 0) -> str:
    text = f"{'  ' * indent}{key}: {_scalar(value)}" if value is not None else f"{'  ' * indent}{key}:"
    return _commented(text, comment)


def _commented(text: str, comment: str) -> str:
    return f"{text:<34} # {comment}" if comment else text


def render_config(s: _Settings) -> str:
    lines = [
        f"# yaml-language-server: $schema=./{SCHEMA_FILENAME}",
        f"# composekit.yaml, written by `composekit init` (template {s.template}).",
        f"# Editors validate and complete keys from {SCHEMA_FILENAME}; `composekit schema > {SCHEMA_FILENAME}`",
        "# refreshes it after an upgrade. `composekit up` deploys; `composekit render --check` in CI keeps",
        "# checked-in rendered files honest.",
        _line("name", s.name, "Compose project: containers, volumes and the image are named after it"),
        _line("domain", s.domain, "CHANGE ME: the DNS name of this server (its certificate comes from ACME)"),
        "acme:",
        _commented("  # email: ops@example.com", "expiry notices from the CA"),
        _line("ca_server", "production", "production | staging | https://... (any ACME directory)", 1),
        "app:",
        *([_line("path", s.path, "the build context: the project with the lock file", 1)] if s.path != "." else []),
        *(
            [_line("workdir", s.workdir, "where the app runs, inside path: its imports start here", 1)]
            if s.workdir != "."
            else []
        ),
        _line("module", s.module, s.module_note, 1),
        _line("health_path", s.health_path, s.health_note, 1),
        _line("workers", "auto", "sized at start from the container's CPUs and memory", 1),
        _commented("  # memory: 512M", "memory limit; also caps the automatic worker count (256M each)"),
        _commented("  # env_file: .env", "the app's secrets (VARIABLE=value), never copied into rendered files"),
    ]
    if s.volumes:
        lines.append(_line("volumes", None, "named volumes: data that survives redeploys", 1))
        lines.extend(_line(k, v, "", 2) for k, v in sorted(s.volumes.items()))
    if s.migrate is not None:
        lines.append("migrate:")
        lines.append(
            _line(
                "command",
                s.migrate if isinstance(s.migrate, str) else list(s.migrate),
                "runs once before the app starts, on every deploy",
                1,
            )
        )
    else:
        lines.extend(
            [
                _commented("# migrate:", "a one-shot step before the app starts, on every deploy"),
                "#   command: alembic upgrade head",
            ]
        )
    if s.database:
        db = s.database
        lines.extend(
            [
                _line("database", None, "a PostgreSQL service `db`; the app and migrate get DATABASE_HOST,"),
                _commented("", "DATABASE_PORT, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD_FILE"),
                _line("engine", db["engine"], "", 1),
                _line("name", db["name"], "created at the first start", 1),
                _line("user", db["user"], "", 1),
                _line(
                    "password_file", db["password_file"], "a Docker secret: never in compose.yaml; keep out of git", 1
                ),
            ]
        )
    if s.python_image is not None:
        lines.extend(["images:", _line("python", s.python_image, "satisfies requires-python; pin a tested version", 1)])
    else:
        lines.extend(
            [
                _commented("# images:", "defaults shown; pin versions you have tested"),
                f"#   python: {DEFAULT_PYTHON_IMAGE}",
            ]
        )
    if s.database:
        lines.append(
            _commented(f"#   postgres: {DEFAULT_POSTGRES_IMAGE}", "data in /var/lib/postgresql/data (18 moved it)")
        )
    return "\n".join(lines) + "\n"


def _guidance(s: _Settings, placement: Placement | None, starter: bool) -> list[str]:
    out = [f"set `domain` in {CONFIG_FILENAME} to this server's DNS name (now {s.domain})"]
    if placement is not None and placement.health.best is None and placement.health.unresolved:
        u = placement.health.unresolved[0]
        out.append(
            f"set app/health_path in {CONFIG_FILENAME} to the full path of your health route {u.route!r}: its prefix "
            f"`{u.expression}` ({_in(placement.app, u.file)} line {u.line}) is not a constant composekit can read"
        )
    elif placement is not None and placement.health.best is None:
        out.append(
            f"add a health endpoint that answers 200 once the app can serve (the healthcheck and Traefik rely on "
            f"it), for instance next to your app in {_file_of(placement.app)}:\n"
            f'    @{_route_owner(s.module)}.get("{s.health_path}")\n'
            "    def health() -> dict[str, str]:\n"
            '        return {"status": "ok"}'
        )
    elif not starter:
        out.append(f"health endpoint: GET {s.health_path} (found in the code) must answer 200 when the app is ready")
    if s.database and not starter:
        out.append(
            "connect to PostgreSQL from the environment the stack sets (add `psycopg[binary]` to your dependencies):\n"
            "    password = open(os.environ['DATABASE_PASSWORD_FILE']).read().strip()\n"
            "    url = (f\"postgresql+psycopg://{os.environ['DATABASE_USER']}:{quote(password)}\"\n"
            "           f\"@{os.environ['DATABASE_HOST']}:{os.environ['DATABASE_PORT']}/"
            "{os.environ['DATABASE_NAME']}\")"
        )
    if s.database:
        out.append(f"{DB_PASSWORD_FILE} holds a generated password; it is git-ignored: back it up with the data")
    out.append("then run `composekit up` (or `composekit render` to look at the stack first)")
    return out


def _route_owner(module: str) -> str:
    attribute = module.split(":", 1)[1]
    return "app" if attribute.endswith("()") else attribute


def _file_of(app: AppLocation) -> str:
    return app.file or app.module.split(":")[0].replace(".", "/") + ".py"
