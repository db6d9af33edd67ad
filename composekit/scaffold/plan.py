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
from ..config.project import DEFAULT_OUT_DIR, DependencyStyle
from ..config.schema import schema_json
from ..errors import TemplateError
from ..render.dockerfile import dockerignore, render_dockerfile
from .detect import Layout, detect_layout, ours_or_missing
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
    migrate: str | tuple[str, ...] | None
    migrate_note: str
    volumes: dict[str, str]
    database: dict[str, str] | None
    template: str


def _default_name(root: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", root.resolve().name.lower()).strip("-_")
    return name or "app"


def _checked(value: str, option: str, check: Callable[[Any], Any]) -> str:
    try:
        check(value)
    except ValueError as exc:
        raise TemplateError(f"init: {option}: {exc}") from None
    return value


def _choose_module(layout: Layout, module: str | None, ask: Ask | None) -> tuple[str, str]:
    if module is not None:
        return _checked(module, "--module", lambda v: check_value(App, "module", v)), "from --module"
    apps = layout.apps
    if len(apps) == 1:
        return apps[0][0], f"found the FastAPI app in {apps[0][1]}"
    where = layout.root
    if ask is not None:
        if apps:
            chosen = ask("Several FastAPI apps found; which one does gunicorn serve?", [m for m, _ in apps])
        else:
            chosen = ask(
                f"No `app = FastAPI(...)` found in {where}; which ASGI app does gunicorn serve "
                "(package.module:attribute)?",
                [],
            )
        return _checked(chosen, "module", lambda v: check_value(App, "module", v)), "as answered"
    if apps:
        raise TemplateError(
            f"init: found several FastAPI apps in {where}: {', '.join(m for m, _ in apps)}; "
            f"pass the one to serve with --module, e.g. --module {apps[0][0]}"
        )
    raise TemplateError(
        f"init: no FastAPI app found in {where} (looked for a module-level `app = FastAPI(...)` in its .py files) "
        "and stdin is not a terminal to ask; pass --module package.module:attribute, e.g. --module app.main:app"
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
        f"init: {root} has no requirements.txt, poetry.lock or uv.lock (next to pyproject.toml), so composekit "
        f"cannot tell how to install the app's dependencies; {fix} and run `composekit init` again, "
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
            migrate=tmpl.config.migrate.command,
            migrate_note="the example app's migration",
            volumes=dict(tmpl.config.app.volumes),
            database=_database_section(tmpl, name or _default_name(root)),
            template=template,
        )
    else:
        style = layout.dependencies
        if style is None and layout.dockerfile is None:
            raise _missing_dependencies(root)
        chosen, module_note = _choose_module(layout, module, ask)
        notes.append(f"module {chosen}: {module_note}")
        migrate: str | None = "alembic upgrade head" if layout.alembic else None
        if migrate:
            notes.append("alembic.ini found: migrate/command is `alembic upgrade head`")
        settings = _Settings(
            name=name or _default_name(root),
            domain="",
            module=chosen,
            module_note=module_note,
            health_path=layout.health_path or "/health",
            migrate=migrate,
            migrate_note="alembic.ini found" if migrate else "",
            volumes={},
            database=_database_section(tmpl, name or _default_name(root)),
            template=template,
        )
    settings = _with_domain(settings, domain)
    config_text = render_config(settings)
    config = parse_config(yaml.safe_load(config_text))  # what init writes, `up` must accept

    files.append(PlannedFile(CONFIG_FILENAME, config_text.encode()))
    files.append(PlannedFile(SCHEMA_FILENAME, schema_json().encode()))
    secret_paths = [DB_PASSWORD_FILE] if settings.database else []
    if layout.dockerfile is None or layout.dockerfile_is_generated:
        assert style is not None
        notes.append(f"dependencies: {style.value} ({_STYLE_NOTES[style]}) -> Dockerfile")
        files.append(PlannedFile("Dockerfile", dockerfile_for(style, config).encode()))
    else:
        notes.append("kept your Dockerfile; composekit builds the app with it")
    if ours_or_missing(root / ".dockerignore"):
        files.append(PlannedFile(".dockerignore", dockerignore(secret_paths).encode()))
    else:
        notes.append("kept your .dockerignore" + (f" (make sure it lists {SECRETS_DIR}/)" if secret_paths else ""))
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
        guidance=_guidance(settings, layout, starter),
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


_STYLE_NOTES = {
    DependencyStyle.PIP: "requirements.txt",
    DependencyStyle.POETRY: "pyproject.toml + poetry.lock, exported to requirements in a build stage",
    DependencyStyle.UV: "uv.lock, synced before the code is copied",
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


def dockerfile_for(style: DependencyStyle, config: Config) -> str:
    """The same Dockerfile `composekit render` generates for this config, so both agree."""
    return render_dockerfile(
        style,
        python_image=config.images.python,
        module=config.app.module,
        port=config.app.port,
        volume_paths=list(config.app.volumes.values()),
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
        _line("module", s.module, s.module_note, 1),
        _line("health_path", s.health_path, "must answer 200 to GET: the healthcheck and Traefik use it", 1),
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


def _guidance(s: _Settings, layout: Layout, starter: bool) -> list[str]:
    out = [f"set `domain` in {CONFIG_FILENAME} to this server's DNS name (now {s.domain})"]
    if not starter and layout.health_path is None:
        out.append(
            f"add a health endpoint that answers 200 once the app can serve (the healthcheck and Traefik rely on "
            f"it), for instance next to your app in {_file_of(layout, s.module)}:\n"
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


def _file_of(layout: Layout, module: str) -> str:
    return next((f for m, f in layout.apps if m == module), module.split(":")[0].replace(".", "/") + ".py")
