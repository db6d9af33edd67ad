"""What `composekit init` decides before it plans files: the settings of the new composekit.yaml (module, health
path, migration, database, python image, domain), the notes saying what was detected, and the guidance printed after.
Reads only."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.fields import check_value
from ..config.model import CONFIG_FILENAME, App, Config
from ..config.sections import DEFAULT_PYTHON_IMAGE
from ..config.sources import DependencyStyle, Sources
from ..errors import TemplateError
from .detect import AppLocation, Layout, Placement
from .python_version import image_for
from .templates import SECRETS_DIR, Template

__all__ = [
    "DB_PASSWORD_FILE",
    "HEALTH_COMMENT",
    "Ask",
    "InitSettings",
    "choose_module",
    "companion_sections",
    "database_section",
    "default_name",
    "from_root",
    "guidance",
    "health_notes",
    "python_image_choice",
    "style_note",
    "where_notes",
    "with_domain",
]

DB_PASSWORD_FILE = f"{SECRETS_DIR}/db_password"


Ask = Callable[[str, list[str]], str]


@dataclass(frozen=True)
class InitSettings:
    name: str
    domain: str
    module: str
    module_note: str
    health_path: str
    health_note: str
    migrate: str | tuple[str, ...] | None
    volumes: dict[str, str]
    database: dict[str, str] | None
    template: str
    path: str = "."
    workdir: str = "."
    python_image: str | None = None  # when the default image does not satisfy the project's requires-python
    python_note: str = ""
    dockerfile: str | None = None  # app/dockerfile, when the Dockerfile to build is not app/path's `Dockerfile`
    # processes/ read from the repository's own Compose file (scaffold/compose_file.py), written commented out.
    suggested_processes: dict[str, str] = field(default_factory=dict)
    # The template's companions (docs/companions.md): app/environment and app/secrets they need, processes (the
    # example app's only) and accessories, as plain config data.
    app_environment: dict[str, str] = field(default_factory=dict)
    app_secrets: dict[str, str] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    accessories: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def secret_files(self) -> list[str]:
        """The files of generated passwords init writes: the database's, the accessories' (and app/secrets naming
        one of those)."""
        files = [DB_PASSWORD_FILE] if self.database else []
        files += [str(a["password_file"]) for a in self.accessories.values() if "password_file" in a]
        return sorted(set(files))


def default_name(root: Path) -> str:
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


def choose_module(layout: Layout, module: str | None, ask: Ask | None) -> tuple[AppLocation, str]:
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


def python_image_choice(placement: Placement) -> tuple[str | None, str]:
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


HEALTH_COMMENT = "must answer 200 to GET: the healthcheck and Traefik use it"


def from_root(app: AppLocation, file: str) -> str:
    """A file of the import root, named from the repository root."""
    return file if app.imports == "." else f"{app.imports}/{file}"


def where_notes(root: Path, app: AppLocation, own_dockerfile: bool = False) -> list[str]:
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
        out.append(
            f"imports start in {app.imports} (a src/ layout): "
            + (
                "your Dockerfile must make it the WORKDIR or put it on PYTHONPATH (`up` checks the image)"
                if own_dockerfile
                else "the image puts it on PYTHONPATH"
            )
        )
    return out


def health_notes(placement: Placement) -> list[str]:
    scan, app = placement.health, placement.app
    best = scan.best
    out = []
    if best is not None:
        out.append(
            f"health route GET {best.path}: found in {from_root(app, best.file)} line {best.line}, prefixes composed"
        )
    for u in scan.unresolved:
        out.append(
            f"health route {u.route!r} found, but its prefix `{u.expression}` ({from_root(app, u.file)} line {u.line}"
            + (f", below {u.above!r}" if u.above else "")
            + ") cannot be read statically"
        )
    if best is None and not scan.unresolved:
        out.append("no health route found (a GET route whose path names health, healthz, ready, live or ping)")
    return out


def style_note(sources: Sources, context: Path) -> str:
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


def database_section(tmpl: Template, project: str) -> dict[str, str] | None:
    """The template's database, named after the project."""
    db = tmpl.config.database
    if db is None:
        return None
    ident = re.sub(r"[^a-z0-9_]", "_", project.lower())[:63]
    ident = ident if re.match(r"^[a-z_]", ident) else f"_{ident}"[:63]
    return {"engine": db.engine, "name": ident, "user": ident, "password_file": DB_PASSWORD_FILE}


def companion_sections(tmpl: Template, starter: bool) -> dict[str, Any]:
    """The template's companions as InitSettings fields. An existing app gets the accessories and the variables that
    reach them; the processes run the example app's code, so only the example app gets them."""
    config = tmpl.config
    dump = config.model_dump(mode="json", exclude_defaults=True)
    accessories: dict[str, dict[str, Any]] = dump.get("accessories", {})
    processes: dict[str, dict[str, Any]] = dump.get("processes", {}) if starter else {}
    return {
        "app_environment": dict(config.app.environment) if accessories else {},
        "app_secrets": dict(config.app.secrets) if accessories else {},
        "processes": processes,
        "accessories": accessories,
    }


def with_domain(settings: InitSettings, domain: str | None) -> InitSettings:
    if domain is not None:
        return replace(settings, domain=_checked(domain, "--domain", lambda v: check_value(Config, "domain", v)))
    return replace(settings, domain=f"{settings.name.replace('_', '-')}.example.com")


def guidance(s: InitSettings, placement: Placement | None, starter: bool) -> list[str]:
    out = [f"set `domain` in {CONFIG_FILENAME} to this server's DNS name (now {s.domain})"]
    if placement is not None and placement.health.best is None and placement.health.unresolved:
        u = placement.health.unresolved[0]
        out.append(
            f"set app/health_path in {CONFIG_FILENAME} to the full path of your health route {u.route!r}: its prefix "
            f"`{u.expression}` ({from_root(placement.app, u.file)} line {u.line}) is not a constant composekit can read"
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
    for path in s.secret_files:
        if path != DB_PASSWORD_FILE:
            out.append(f"{path} holds a generated password; it is git-ignored: keep it with the other secrets")
    out.append("then run `composekit up` (or `composekit render` to look at the stack first)")
    return out


def _route_owner(module: str) -> str:
    attribute = module.split(":", 1)[1]
    return "app" if attribute.endswith("()") else attribute


def _file_of(app: AppLocation) -> str:
    return app.file or app.module.split(":")[0].replace(".", "/") + ".py"
