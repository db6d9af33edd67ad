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
  (Traefik's routes, middlewares and TLS options are not rendered here: `up` writes them into the routes volume.)
  Dockerfile              (render/dockerfile.py) only when the app has none (+ Dockerfile.dockerignore)
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..config.project import Project
from ..errors import ConfigError
from .compose import SECRET_ENV, compose_variables, needs_secret_env, render_compose
from .dockerfile import dockerignore, dockerignore_excludes, render_dockerfile
from .swarm import MIGRATE_FILE, STACK_FILE, SWARM_DIR, render_swarm
from .text import CONFIG_HEADER, acme_ca_files, dump, header, literal
from .traefik import traefik_static

__all__ = [
    "COMPOSE_FILE",
    "OPTIONAL_FILES",
    "RenderedStack",
    "check_stack",
    "render_stack",
    "stack_configs",
    "write_stack",
]


COMPOSE_FILE = "compose.yaml"


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
    if needs_secret_env(project.config):
        contents[SECRET_ENV] = runtime.joinpath(SECRET_ENV).read_text(encoding="utf-8")
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
        doc = compose_variables(literal(render_compose(project, configs)), config)
        files = {COMPOSE_FILE: header(project) + dump(doc)}
    if project.dockerfile is None:
        assert project.dependencies is not None
        files["Dockerfile"] = render_dockerfile(
            project.dependencies,
            python_image=config.images.python,
            module=config.app.module,
            port=config.app.port,
            volume_paths=list(config.app.volumes.values()),
        )
        files["Dockerfile.dockerignore"] = dockerignore(_ignored_secrets(project))
    return RenderedStack(files=files, configs=configs)


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
    for key, value, path in _secret_files(project):
        rel = _in_context(project, path)
        if rel is None or dockerignore_excludes(text, rel):
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
# versions: Traefik's routes now live in the routes volume, and there is no socket proxy); a leftover copy on
# disk is stale: write_stack removes it and check_stack reports it.
OPTIONAL_FILES = (
    "Dockerfile",  # rendered only when the app has no Dockerfile
    "Dockerfile.dockerignore",
    "traefik.yml",  # bind-mounted before composekit delivered them inside compose.yaml
    "traefik-dynamic.yml",
    "gunicorn.conf.py",
    "socket-proxy.py",
)


# The files of the other mode: stale once the mode changes (swarm/ holds nothing but rendered files).
_MODE_FILES = (COMPOSE_FILE, STACK_FILE, MIGRATE_FILE)


def _stale(out: Path, stack: RenderedStack) -> list[str]:
    """Files composekit rendered into ``out`` earlier that this render does not produce, in a stable order."""
    names = [*OPTIONAL_FILES, *_MODE_FILES]
    swarm_dir = out / SWARM_DIR
    if swarm_dir.is_dir():
        names += sorted(f"{SWARM_DIR}/{p.name}" for p in swarm_dir.iterdir() if p.is_file())
    return [n for n in names if n not in stack.files and (out / n).is_file()]


def check_stack(project: Project, stack: RenderedStack | None = None) -> str:
    """A unified diff from the files in the output directory to a fresh render; "" when they agree.

    Reads the output directory, writes nothing: what `composekit render --check` runs in CI.
    """
    stack = stack or render_stack(project)
    out = project.out_dir
    label = Path(os.path.relpath(out, project.root)).as_posix() if out.is_relative_to(project.root) else out.as_posix()
    chunks: list[str] = []
    names = list(stack.files) + _stale(out, stack)
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


def write_stack(project: Project, stack: RenderedStack | None = None) -> RenderedStack:
    """Write the rendered files into the project's output directory; untouched files keep their mtime."""
    stack = stack or render_stack(project)
    out = project.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for name, content in stack.files.items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    # A stale generated file (a Dockerfile after the app got its own, the other mode's files) is removed.
    for name in _stale(out, stack):
        (out / name).unlink()
    return stack
