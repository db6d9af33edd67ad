"""Config -> the files of a Compose stack. render_stack is pure (no Docker, no writes, same input -> same bytes);
check_stack compares them with the files on disk, write_stack writes them.

Rendered files (paths relative to the output directory, which the compose file's relative paths
are resolved from):
  compose.yaml            (render/compose.py) services traefik, routes, files, app, and migrate and db when
                          configured; it carries every file its containers read (RenderedStack.configs):
      traefik.yml             (render/traefik.py) Traefik's static configuration (entrypoints, ACME resolver,
                              providers)
      acme-ca-N.pem           the files of acme/ca_certificates, read from the deploying machine
      gunicorn.conf.py        gunicorn settings; sizes workers at container start from the cgroup
      secret_env.py           runtime/secret_env.py, when app/secrets or database/variables puts a secret in a
                              variable
      scheduler.py, cronsim.py  runtime/scheduler.py and the installed cronsim's module, when schedules/ is set
                              (render/companions.py scheduler_files)
      routes.yml              (render/traefik.py initial_routes) Traefik's routes, middlewares and TLS options
                              the stack starts with: the domain to the app's service; the routes container puts
                              them into a routes volume that has no routes file yet; `up` writes its generations
                              over them
  Dockerfile              (render/dockerfile.py) only when the app has none (+ Dockerfile.dockerignore)
  .composekit-manifest.json   the files above with the hash of each: write_stack removes a file it no longer
                          renders only when the manifest lists it with that content (the output directory may be
                          the user's own, the app's directory say)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from ..config.project import Project
from ..errors import ConfigError, UserError
from .backup import add_backup_services, backup_files
from .companions import add_companions, companion_variables, scheduler_files
from .compose import compose_variables, render_compose
from .dockerfile import dockerignore, dockerignore_excludes, render_dockerfile
from .routes_volume import INITIAL_ROUTES
from .secrets import SECRET_ENV, needs_secret_env
from .swarm import MIGRATE_FILE, STACK_FILE, SWARM_DIR, render_swarm
from .text import CONFIG_HEADER, acme_ca_files, dump, header, literal
from .traefik import initial_routes, traefik_static

__all__ = [
    "COMPOSE_FILE",
    "MANIFEST_FILE",
    "OPTIONAL_FILES",
    "RenderedStack",
    "check_stack",
    "render_manifest",
    "render_stack",
    "stack_configs",
    "write_stack",
]


COMPOSE_FILE = "compose.yaml"


# Beside the rendered files: what composekit wrote there (render_manifest), so it removes nothing else.
MANIFEST_FILE = ".composekit-manifest.json"


@dataclass(frozen=True)
class RenderedStack:
    """The files of a stack, in a stable order, keyed by path relative to the output directory."""

    files: dict[str, str]
    configs: dict[str, str] = field(default_factory=dict)  # what compose.yaml delivers into containers, by name

    @property
    def compose(self) -> str:
        return self.files[COMPOSE_FILE]

    @property
    def main_file(self) -> str:
        """The file to deploy: compose.yaml, or stack.yml in mode: swarm."""
        return STACK_FILE if STACK_FILE in self.files else COMPOSE_FILE

    @property
    def main(self) -> str:
        return self.files[self.main_file]


def stack_configs(project: Project) -> dict[str, str]:
    """The files the stack's containers read, by name, as compose.yaml carries them (`configs` with `content:`):
    nothing is read from the deploying machine's disk once the document is rendered."""
    runtime = resources.files("composekit.runtime")
    contents = {"traefik.yml": CONFIG_HEADER + dump(traefik_static(project.config))}
    contents.update(acme_ca_files(project))
    contents["gunicorn.conf.py"] = runtime.joinpath("gunicorn_conf.py").read_text(encoding="utf-8")
    contents[INITIAL_ROUTES] = initial_routes(project.config)
    if needs_secret_env(project.config):
        contents[SECRET_ENV] = runtime.joinpath(SECRET_ENV).read_text(encoding="utf-8")
    if project.config.schedules:
        contents.update(scheduler_files())
    if project.config.backups is not None and project.config.backups.schedule is not None:
        contents.update(scheduler_files())
        contents.update(backup_files())
    return contents


def render_stack(project: Project) -> RenderedStack:
    """Every file of the stack, for the config's mode. Same project -> byte-identical output."""
    _check_own_dockerignore(project)
    config = project.config
    if config.mode == "swarm":
        configs: dict[str, str] = {}
        files = render_swarm(project)
    else:
        configs = stack_configs(project)
        doc = literal(
            add_backup_services(add_companions(render_compose(project, configs), project, configs), project, configs)
        )
        doc = companion_variables(compose_variables(doc, config), config)
        files = {COMPOSE_FILE: header(project) + dump(doc)}
    if project.dockerfile is None:
        files["Dockerfile"] = _generated_dockerfile(project)
        files["Dockerfile.dockerignore"] = dockerignore(_ignored_secrets(project))
    files[MANIFEST_FILE] = render_manifest(files)
    return RenderedStack(files=files, configs=configs)


def _generated_dockerfile(project: Project) -> str:
    config = project.config
    assert project.dependencies is not None
    return render_dockerfile(
        project.dependencies,
        python_image=config.images.python,
        module=config.app.module,
        port=config.app.port,
        volume_paths=list(config.app.volumes.values()),
        sources=project.sources,
    )


def _copied_root(project: Project) -> Path:
    """What of the build context can reach the image: app/workdir alone when the Dockerfile is byte for byte the one
    composekit generates for this config (`init` wrote it; it copies nothing else), else the whole context."""
    context = project.app_dir.resolve()
    workdir = project.config.app.workdir
    if workdir == "." or project.dockerfile is None or project.sources is None:
        return context
    try:
        ours = project.dockerfile.read_text(encoding="utf-8") == _generated_dockerfile(project)
    except (OSError, UnicodeDecodeError):
        ours = False
    return (context / workdir).resolve() if ours else context


def _secret_files(project: Project) -> list[tuple[str, str, Path]]:
    """(key path, value, resolved path) of every configured file that holds secrets."""
    config = project.config
    found: list[tuple[str, str, Path]] = []
    if config.app.env_file is not None:
        found.append(("app/env_file", config.app.env_file, project.from_root(config.app.env_file).resolve()))
    if config.database is not None:
        value = config.database.password_file
        found.append(("database/password_file", value, project.from_root(value).resolve()))
    for name, value in config.app.secrets.items():
        found.append((f"app/secrets/{name}", value, project.from_root(value).resolve()))
    return found


def _in_context(project: Project, path: Path) -> str | None:
    """``path`` relative to the build context, or None when the build never sees it."""
    context = project.app_dir.resolve()
    return path.relative_to(context).as_posix() if path.is_relative_to(context) else None


def _ignore_line(rel: str) -> str:
    """A .dockerignore line matching exactly ``rel``: pattern characters and a leading "#" or "!" escaped."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in rel)
    return "\\" + escaped if escaped.startswith(("#", "!")) else escaped


def _ignored_secrets(project: Project) -> list[str]:
    """Secret files inside the build context, so that they never reach an image layer."""
    lines: list[str] = []
    for _key, _value, path in _secret_files(project):
        rel = _in_context(project, path)
        if rel is not None and _ignore_line(rel) not in lines:
            lines.append(_ignore_line(rel))
    return lines


def _check_own_dockerignore(project: Project) -> None:
    """With the app's own Dockerfile, composekit cannot write its .dockerignore: refuse to build an image
    that would contain a configured env or secret file, and say which line keeps it out."""
    if project.dockerfile is None:
        return
    specific = project.dockerfile.with_name(project.dockerfile.name + ".dockerignore")  # BuildKit prefers it
    ignore = specific if specific.is_file() else project.app_dir / ".dockerignore"
    text = ignore.read_text(encoding="utf-8", errors="replace") if ignore.is_file() else ""
    source = " + ".join(p.name for p in project.config_files)
    problems: list[str] = []
    copied = _copied_root(project)
    for key, value, path in _secret_files(project):
        rel = _in_context(project, path)
        if rel is None or not path.is_relative_to(copied) or dockerignore_excludes(text, rel):
            continue
        line = _ignore_line(rel)
        if ignore.is_file():
            fix = f'{ignore} does not exclude it, so the image would contain it; add the line "{line}" to {ignore}'
        else:
            fix = f'there is no {ignore}, so the image would contain it; create it with the line "{line}"'
        problems.append(f'{source}: {key}: "{value}" is in the build context of your Dockerfile and {fix}')
    if problems:
        raise ConfigError(problems)


# Rendered only for some configs, or no longer rendered (the files compose.yaml now carries, and those of earlier
# versions: there is no socket proxy); an output directory without a manifest (rendered by a composekit before the
# manifest) may hold a copy, removed when it carries composekit's header (_ours_without_manifest).
OPTIONAL_FILES = (
    "Dockerfile",  # rendered only when the app has no Dockerfile
    "Dockerfile.dockerignore",
    "traefik.yml",  # bind-mounted before composekit delivered them inside compose.yaml
    "traefik-dynamic.yml",
    "gunicorn.conf.py",
    "socket-proxy.py",
)


# The files of the other mode: stale once the mode changes.
_MODE_FILES = (COMPOSE_FILE, STACK_FILE, MIGRATE_FILE)


# The first line of every file composekit renders with a header (text.HEADER, text.CONFIG_HEADER, the Dockerfile and
# its .dockerignore): how a file of an output directory without a manifest is known as composekit's.
_OWN_PREFIX = "# Generated by composekit"

# Rendered verbatim from the package (mode: swarm's swarm/*.py, and gunicorn.conf.py of earlier versions), no header.
_RUNTIME_FILES = ("gunicorn_conf.py", "socket_proxy.py", "uvicorn_drain.py")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def render_manifest(files: dict[str, str]) -> str:
    """The manifest of a render: every file it writes (but itself) with the hash of its content. Deterministic, so
    it is committed with the stack; the next write_stack removes only files listed here and unchanged since."""
    doc = {
        "generator": "composekit",
        "about": "The files composekit rendered here. `composekit render` removes a file it no longer renders only "
        "when it is listed here with this content; it never touches any other file.",
        "files": {name: _digest(files[name].encode("utf-8")) for name in sorted(files) if name != MANIFEST_FILE},
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _safe_name(name: object) -> bool:
    """A manifest entry names a file inside the output directory (an edited manifest reaches nothing else)."""
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def _recorded(out: Path) -> dict[str, str] | None:
    """The files the manifest in ``out`` lists, with their hashes; None when there is no readable manifest."""
    path = out / MANIFEST_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        return None
    return {name: digest for name, digest in files.items() if _safe_name(name) and isinstance(digest, str)}


def _ours_without_manifest(path: Path) -> bool:
    """A file of an output directory rendered before the manifest existed is composekit's when it carries its header
    line or is, byte for byte, a file composekit ships verbatim; any other file is the user's."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data.startswith(_OWN_PREFIX.encode()):
        return True
    runtime = resources.files("composekit.runtime")
    return any(data == runtime.joinpath(name).read_bytes() for name in _RUNTIME_FILES)


@dataclass(frozen=True)
class _Leftovers:
    stale: list[str]  # composekit's own files this render no longer produces: removed
    edited: list[str]  # files composekit wrote that were edited since and are no longer rendered: kept


def _leftovers(out: Path, stack: RenderedStack) -> _Leftovers:
    """Files in ``out`` that an earlier render wrote and this one does not produce, in a stable order. Only files
    the manifest lists (or, without a manifest, known names that carry composekit's header) are considered."""
    recorded = _recorded(out)
    stale: list[str] = []
    edited: list[str] = []
    if recorded is not None:
        for name in sorted(recorded):
            path = out / name
            if name in stack.files or name == MANIFEST_FILE or not path.is_file():
                continue
            (stale if _digest(path.read_bytes()) == recorded[name] else edited).append(name)
        return _Leftovers(stale, edited)
    names = [*OPTIONAL_FILES, *_MODE_FILES]
    swarm_dir = out / SWARM_DIR
    if swarm_dir.is_dir():
        names += sorted(f"{SWARM_DIR}/{p.name}" for p in swarm_dir.iterdir() if p.is_file())
    stale = [n for n in names if n not in stack.files and (out / n).is_file() and _ours_without_manifest(out / n)]
    return _Leftovers(stale, edited)


def check_stack(project: Project, stack: RenderedStack | None = None) -> str:
    """A unified diff from the files in the output directory to a fresh render; "" when they agree.

    Reads the output directory, writes nothing: what `composekit render --check` runs in CI. Only composekit's own
    files count: a file of the user's in the output directory is never reported.
    """
    stack = stack or render_stack(project)
    out = project.out_dir
    label = Path(os.path.relpath(out, project.root)).as_posix() if out.is_relative_to(project.root) else out.as_posix()
    chunks: list[str] = []
    names = list(stack.files) + _leftovers(out, stack).stale
    for name in names:
        path = out / name
        on_disk = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
        expected = stack.files.get(name)
        if on_disk == expected:
            continue
        old = f"{label}/{name}" if on_disk is not None else "/dev/null"
        new = f"{label}/{name}" if expected is not None else "/dev/null"
        diff = difflib.unified_diff(
            (on_disk or "").splitlines(keepends=True),
            (expected or "").splitlines(keepends=True),
            fromfile=f"{old} (on disk)" if on_disk is not None else old,
            tofile=f"{new} (rendered)" if expected is not None else new,
        )
        chunks.append(
            "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff)
        )
    return "".join(chunks)


def _refuse_foreign(out: Path, stack: RenderedStack) -> None:
    """Refuse (writing nothing) to overwrite a file composekit did not write: one the manifest does not list, where
    composekit renders a file with its header and the file on disk has none (the app's own compose.yaml, say, when
    the output directory is the app's). Files rendered without a header (copies of the CA files and runtime files)
    cannot be told apart and are replaced as before."""
    recorded = _recorded(out) or {}
    foreign: list[str] = []
    for name, content in stack.files.items():
        path = out / name
        if name == MANIFEST_FILE or name in recorded or not content.startswith(_OWN_PREFIX) or not path.is_file():
            continue
        if path.read_text(encoding="utf-8", errors="replace") != content and not _ours_without_manifest(path):
            foreign.append(name)
    if foreign:
        raise UserError(
            "render: "
            + ", ".join(str(out / name) for name in foreign)
            + f" {'exists' if len(foreign) == 1 else 'exist'} and composekit did not write "
            + f"{'it' if len(foreign) == 1 else 'them'} (not in {MANIFEST_FILE}, no composekit header), so "
            "nothing was written: move "
            + f"{'it' if len(foreign) == 1 else 'them'} away, or render into another directory (--out DIR)"
        )


def write_stack(
    project: Project, stack: RenderedStack | None = None, warn: Callable[[str], None] = lambda _: None
) -> RenderedStack:
    """Write the rendered files into the project's output directory; untouched files keep their mtime.

    A file an earlier render wrote and this one no longer produces is removed, unless it was edited since: that one
    is kept and ``warn`` names it. No other file is ever removed, nor overwritten (_refuse_foreign)."""
    stack = stack or render_stack(project)
    out = project.out_dir
    _refuse_foreign(out, stack)
    leftovers = _leftovers(out, stack)  # before the new manifest replaces the old one
    out.mkdir(parents=True, exist_ok=True)
    for name, content in stack.files.items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8", errors="replace") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    for name in leftovers.stale:
        (out / name).unlink()
    for name in leftovers.edited:
        warn(
            f"kept {out / name}: an earlier `composekit render` wrote it and this one no longer does, but it was "
            "edited since, so it is yours now; delete it if nothing needs it"
        )
    return stack
