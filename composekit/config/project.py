"""Where a composekit project lives on disk, and what its app directory holds.

This is the only I/O the render step depends on: it looks, it never writes.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..errors import ConfigError
from .load import load_config, read_yaml
from .model import CONFIG_FILENAME, OVERRIDE_FILENAME, WORKER_VARIABLES, Config

__all__ = [
    "LOCKED_STYLES",
    "DependencyStyle",
    "Project",
    "Sources",
    "check_override",
    "detect_dependencies",
    "detect_sources",
    "env_file_names",
    "load_project",
    "project_name",
    "requirements_file",
    "uv_workspace_members",
]

DEFAULT_OUT_DIR = ".composekit"


class DependencyStyle(str, Enum):  # noqa: UP042 (a StrEnum would change str() and f-strings of a member)
    """How the app declares its dependencies; picks the generated Dockerfile."""

    PIP = "pip"
    POETRY = "poetry"
    UV = "uv"
    PYPROJECT = "pyproject"  # PEP 621 [project].dependencies and no lock file (hatch, setuptools, flit)


def _is_file(path: Path) -> bool:
    """Path.is_file, with a name the OS refuses (too long, say) counted as absent rather than raised."""
    try:
        return path.is_file()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


# Split requirements (requirements/*.txt): the file a production image installs, first match wins.
REQUIREMENTS_NAMES = ("production.txt", "prod.txt", "main.txt", "base.txt", "common.txt", "requirements.txt")


def requirements_file(app_dir: Path) -> str | None:
    """requirements.txt, else the production file of a requirements/ directory; POSIX, relative to app_dir."""
    if _is_file(app_dir / "requirements.txt"):
        return "requirements.txt"
    for name in REQUIREMENTS_NAMES:
        if _is_file(app_dir / "requirements" / name):
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
                found.update(p.relative_to(root).as_posix() for p in root.glob(pattern) if _is_dir(p))
        return found

    return sorted(m for m in globbed("members") - globbed("exclude") if _is_file(root / m / "pyproject.toml"))


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
    if _is_dir(src / top) or _is_file(src / f"{top}.py"):
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


@dataclass(frozen=True)
class Project:
    """A loaded config plus the facts about its files that rendering needs."""

    config: Config
    config_files: tuple[Path, ...]
    root: Path
    out_dir: Path
    app_dir: Path
    dockerfile: Path | None  # the app's own Dockerfile; None means composekit generates one
    dependencies: DependencyStyle | None
    override_file: Path | None
    sources: Sources | None = None  # what a generated Dockerfile installs (None: the app's own Dockerfile decides)

    @property
    def source(self) -> str:
        return " + ".join(str(p) for p in self.config_files)

    def rel(self, path: Path) -> str:
        """``path`` relative to the output directory, POSIX style: what the compose file refers to."""
        return Path(os.path.relpath(path, self.out_dir)).as_posix()

    def from_root(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (self.root / p)


def env_file_names(path: Path) -> dict[str, int]:
    """The variables an env file sets, each with its line number, read the way Compose reads the file."""
    names: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return names
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name = text.removeprefix("export ").split("=", 1)[0].strip()
        if name:
            names[name] = number
    return names


def _worker_conflicts(config: Config, env_file: Path, source: str) -> list[str]:
    """A worker setting both in the env file and explicitly in the config: which one wins is not obvious."""
    names = env_file_names(env_file)
    return [
        f"{source}: app/{key}: {variable} is also set in {config.app.env_file} (line {names[variable]}); "
        f"keep one of the two: remove app/{key} to use the env file's value, or the line to use the config's"
        for variable, key in WORKER_VARIABLES.items()
        if variable in names and key in config.app.model_fields_set
    ]


def load_project(config_files: tuple[Path, ...] = (), out_dir: Path | None = None) -> Project:
    """Load and validate the config, then check the files it names; every problem reported at once."""
    files = tuple(config_files) or (Path(CONFIG_FILENAME),)
    files = tuple(Path(os.path.abspath(f)) for f in files)
    config = load_config(*files)
    root = files[0].parent
    source = " + ".join(str(f.name) for f in files) if len(files) > 1 else files[0].name
    problems: list[str] = []

    app_dir = (root / config.app.path).resolve() if not Path(config.app.path).is_absolute() else Path(config.app.path)
    dockerfile: Path | None = None
    deps: DependencyStyle | None = None
    sources: Sources | None = None
    if not _is_dir(app_dir):
        problems.append(f"{source}: app/path: directory {config.app.path!r} does not exist (looked for {app_dir})")
    elif not _is_dir(app_dir / config.app.workdir):
        problems.append(
            f"{source}: app/workdir: directory {config.app.workdir!r} does not exist in {app_dir}; it is the "
            "directory of app/path where the app's code runs (default: app/path itself)"
        )
    else:
        deps = detect_dependencies(app_dir)
        sources = detect_sources(app_dir, config.app.workdir, config.app.module)
        if config.app.dockerfile is not None:
            candidate = app_dir / config.app.dockerfile
            if not _is_file(candidate):
                problems.append(
                    f"{source}: app/dockerfile: {config.app.dockerfile!r} not found in {app_dir}; "
                    "fix the path, or remove the key to let composekit generate a Dockerfile"
                )
            dockerfile = candidate
        elif (app_dir / "Dockerfile").is_file():
            dockerfile = app_dir / "Dockerfile"
        elif deps is None:
            problems.append(
                f"{source}: app/path: {app_dir} has no Dockerfile and no requirements.txt, poetry.lock, uv.lock "
                "or pyproject.toml listing dependencies to generate one from; add a Dockerfile or a "
                "requirements.txt (`composekit init` writes both)"
            )
    if config.app.env_file is not None and not _is_file(root / config.app.env_file):
        problems.append(
            f"{source}: app/env_file: {config.app.env_file!r} does not exist; create it (it holds the app's "
            "secrets, keep it out of git) or remove the key"
        )
    elif config.app.env_file is not None:
        problems.extend(_worker_conflicts(config, root / config.app.env_file, source))
    database = config.database
    if database is not None and not _is_file(root / database.password_file):
        problems.append(
            f"{source}: database/password_file: {database.password_file!r} does not exist; create it "
            "(`composekit init --template fastapi-postgres` writes one, or "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "
            f"{database.password_file}`) and keep it out of git"
        )
    for i, ca in enumerate(config.acme.ca_certificates):
        ca_path = Path(ca) if Path(ca).is_absolute() else root / ca
        if not _is_file(ca_path):
            problems.append(f"{source}: acme/ca_certificates/{i}: file {ca!r} does not exist")
    override = root / OVERRIDE_FILENAME
    if override.is_file():
        problems += check_override(override)
    if problems:
        raise ConfigError(problems)

    out = out_dir if out_dir is not None else root / DEFAULT_OUT_DIR
    return Project(
        config=config,
        config_files=files,
        root=root,
        out_dir=Path(os.path.abspath(out)),
        app_dir=app_dir,
        dockerfile=dockerfile,
        dependencies=deps,
        override_file=override if override.is_file() else None,
        sources=sources,
    )


# Compose's own vocabulary (the compose-spec schema of Compose v2.40): an override file that uses anything
# else would be refused by `docker compose` only after composekit had written and built; refuse it first.
COMPOSE_TOP_LEVEL_KEYS = frozenset(
    {"configs", "include", "models", "name", "networks", "secrets", "services", "version", "volumes"}
)
COMPOSE_SERVICE_KEYS = frozenset(
    {
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "pull_refresh_after",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    }
)


def check_override(path: Path) -> list[str]:
    """The override file's shape, before Docker sees it: YAML, a mapping, Compose's keys (or x- extensions)."""
    try:
        doc = read_yaml(path)  # an empty file reads as {}: Compose accepts it too
    except ConfigError as exc:
        return exc.problems
    if not isinstance(doc, dict):
        return [
            f"{path}: expected a mapping of Compose keys (services, volumes, ...) at the top level, got {_kind(doc)}"
        ]
    problems: list[str] = []
    for key, value in doc.items():
        if not isinstance(key, str) or not (key in COMPOSE_TOP_LEVEL_KEYS or key.startswith("x-")):
            known = ", ".join(sorted(COMPOSE_TOP_LEVEL_KEYS))
            problems.append(f"{path}: {key}: unknown Compose key (expected one of: {known}, or x-...)")
        elif key in ("configs", "models", "networks", "secrets", "services", "volumes") and not isinstance(value, dict):
            problems.append(f"{path}: {key}: expected a mapping, got {_kind(value)}")
    services = doc.get("services")
    for service, settings in services.items() if isinstance(services, dict) else ():
        if settings is not None and not isinstance(settings, dict):
            problems.append(
                f"{path}: services/{service}: expected a mapping of Compose service keys, got {_kind(settings)}"
            )
            continue
        for key in settings or {}:
            if not isinstance(key, str) or not (key in COMPOSE_SERVICE_KEYS or key.startswith("x-")):
                problems.append(
                    f"{path}: services/{service}/{key}: unknown Compose service key (extension keys start with x-)"
                )
    return problems


def _kind(value: object) -> str:
    return (
        "null"
        if value is None
        else {"str": "a string", "list": "a list", "int": "a number", "float": "a number", "bool": "a boolean"}.get(
            type(value).__name__, type(value).__name__
        )
    )
