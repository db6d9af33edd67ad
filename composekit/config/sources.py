"""What an app directory holds: how its dependencies are declared (requirements, Poetry, uv, PEP 621), a uv
workspace's members, where its imports start. What the generated Dockerfile installs; it looks, it never writes."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

__all__ = [
    "LOCKED_STYLES",
    "REQUIREMENTS_NAMES",
    "DependencyStyle",
    "Sources",
    "detect_dependencies",
    "detect_sources",
    "is_dir",
    "is_file",
    "project_name",
    "requirements_file",
    "uv_workspace_members",
]


class DependencyStyle(str, Enum):  # noqa: UP042 (a StrEnum would change str() and f-strings of a member)
    """How the app declares its dependencies; picks the generated Dockerfile."""

    PIP = "pip"
    POETRY = "poetry"
    UV = "uv"
    PYPROJECT = "pyproject"  # PEP 621 [project].dependencies and no lock file (hatch, setuptools, flit)


def is_file(path: Path) -> bool:
    """Path.is_file, with a name the OS refuses (too long, say) counted as absent rather than raised."""
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


# Split requirements (requirements/*.txt): the file a production image installs, first match wins.
REQUIREMENTS_NAMES = ("production.txt", "prod.txt", "main.txt", "base.txt", "common.txt", "requirements.txt")


def requirements_file(app_dir: Path) -> str | None:
    """requirements.txt, else the production file of a requirements/ directory; POSIX, relative to app_dir."""
    if is_file(app_dir / "requirements.txt"):
        return "requirements.txt"
    for name in REQUIREMENTS_NAMES:
        if is_file(app_dir / "requirements" / name):
            return f"requirements/{name}"
    return None


LOCKED_STYLES = frozenset({"pip", "poetry", "uv"})


def detect_dependencies(app_dir: Path) -> DependencyStyle | None:
    """The first of: uv.lock, poetry.lock (each with pyproject.toml), requirements.txt or requirements/, a
    pyproject.toml whose [project] lists dependencies (hatch, PDM, setuptools; not a Poetry one: that needs its
    poetry.lock). A pdm.lock is not read (init says how to pin its versions in a requirements.txt)."""
    pyproject = app_dir / "pyproject.toml"
    if (app_dir / "uv.lock").is_file() and pyproject.is_file():
        return DependencyStyle.UV
    if (app_dir / "poetry.lock").is_file() and pyproject.is_file():
        return DependencyStyle.POETRY
    if requirements_file(app_dir) is not None:
        return DependencyStyle.PIP
    if pyproject.is_file():
        doc = _toml(pyproject)
        if isinstance(_table(doc, "project").get("dependencies"), list) and not _table(doc, "tool", "poetry"):
            return DependencyStyle.PYPROJECT
    return None


def _toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _table(doc: object, *keys: str) -> dict[str, object]:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}


def uv_workspace_members(root: Path) -> list[str]:
    """The members of the uv workspace rooted at ``root`` (directories holding a pyproject.toml, relative POSIX
    paths, sorted), from ``[tool.uv.workspace] members`` globs minus ``exclude``; [] when it is no workspace."""
    workspace = _table(_toml(root / "pyproject.toml"), "tool", "uv", "workspace")
    if not workspace:
        return []

    def globbed(key: str) -> set[str]:
        patterns = workspace.get(key, [])
        found: set[str] = set()
        for pattern in patterns if isinstance(patterns, list) else []:
            if isinstance(pattern, str):
                found.update(p.relative_to(root).as_posix() for p in root.glob(pattern) if is_dir(p))
        return found

    return sorted(m for m in globbed("members") - globbed("exclude") if is_file(root / m / "pyproject.toml"))


def project_name(member: Path) -> str | None:
    name = _table(_toml(member / "pyproject.toml"), "project").get("name")
    return name if isinstance(name, str) else None


@dataclass(frozen=True)
class Sources:
    """What the generated Dockerfile installs before the code, and from where: paths POSIX, relative to the build
    context (app/path)."""

    style: DependencyStyle
    requirements: str = "requirements.txt"  # pip: the file `pip install -r` reads
    workspace_members: tuple[str, ...] = ()  # uv workspace: every member (their pyproject.toml are copied)
    package: str | None = None  # uv workspace: the member of app/workdir, synced with its dependencies
    workdir: str = "."  # app/workdir
    pythonpath: str = "."  # where the app's imports start: app/workdir, or its src/ (a src layout)


def _import_root(app_dir: Path, workdir: str, module: str) -> str:
    top = module.split(":", 1)[0].split(".")[0]
    src = app_dir / workdir / "src"
    if is_dir(src / top) or is_file(src / f"{top}.py"):
        return (Path(workdir) / "src").as_posix()
    return workdir


def detect_sources(app_dir: Path, workdir: str = ".", module: str = "") -> Sources | None:
    """How the app's dependencies are declared in ``app_dir`` (the build context), for its code in ``workdir``."""
    style = detect_dependencies(app_dir)
    if style is None:
        return None
    pythonpath = _import_root(app_dir, workdir, module)
    if style is DependencyStyle.PIP:
        requirements = requirements_file(app_dir)
        assert requirements is not None
        return Sources(style, requirements=requirements, workdir=workdir, pythonpath=pythonpath)
    members = uv_workspace_members(app_dir) if style is DependencyStyle.UV else []
    package = project_name(app_dir / workdir) if workdir in members else None
    return Sources(style, workspace_members=tuple(members), package=package, workdir=workdir, pythonpath=pythonpath)
