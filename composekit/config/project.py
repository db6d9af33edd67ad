"""Where a composekit project lives on disk: the config, its root, the output directory, and the files the config
names (app directory, Dockerfile, env file, secrets, override file), each checked.

This is the only I/O the render step depends on: it looks, it never writes. What the app directory holds is read by
config/sources.py, the override file checked by config/override.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .environment import WORKER_VARIABLES
from .load import load_config
from .model import CONFIG_FILENAME, OVERRIDE_FILENAME, Config, database_variables
from .override import check_override
from .sources import DependencyStyle, Sources, detect_dependencies, detect_sources, is_dir, is_file

__all__ = ["DEFAULT_OUT_DIR", "Project", "env_file_names", "load_project"]

DEFAULT_OUT_DIR = ".composekit"


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


def _secret_conflicts(config: Config, env_file: Path, source: str) -> list[str]:
    """A variable composekit fills from a file (app/secrets, the database's) that the env file sets too: the
    env file's value would never be seen (composekit's wins), so one of them is a forgotten copy of a secret."""
    names = env_file_names(env_file)
    keys = {name: f"app/secrets/{name}" for name in config.app.secrets}
    if config.database is not None and config.database.variables != "composekit":  # unchanged: DATABASE_* as before
        keys.update(dict.fromkeys(database_variables(config.database), "database/variables"))
    return [
        f"{source}: {key}: {name} is also set in {config.app.env_file} (line {names[name]}); composekit sets it, "
        "so remove the line from the env file"
        for name, key in keys.items()
        if name in names
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
    if not is_dir(app_dir):
        problems.append(f"{source}: app/path: directory {config.app.path!r} does not exist (looked for {app_dir})")
    elif not is_dir(app_dir / config.app.workdir):
        problems.append(
            f"{source}: app/workdir: directory {config.app.workdir!r} does not exist in {app_dir}; it is the "
            "directory of app/path where the app's code runs (default: app/path itself)"
        )
    else:
        deps = detect_dependencies(app_dir)
        sources = detect_sources(app_dir, config.app.workdir, config.app.module)
        if config.app.dockerfile is not None:
            candidate = app_dir / config.app.dockerfile
            if not is_file(candidate):
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
    if config.app.env_file is not None and not is_file(root / config.app.env_file):
        problems.append(
            f"{source}: app/env_file: {config.app.env_file!r} does not exist; create it (it holds the app's "
            "secrets, keep it out of git) or remove the key"
        )
    elif config.app.env_file is not None:
        problems.extend(_worker_conflicts(config, root / config.app.env_file, source))
        problems.extend(_secret_conflicts(config, root / config.app.env_file, source))
    for name, value in config.app.secrets.items():
        if not is_file(root / value):
            problems.append(
                f"{source}: app/secrets/{name}: {value!r} does not exist; create it (it holds the value of {name} "
                f"alone, such as `python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {value}`) and "
                "keep it out of git"
            )
    database = config.database
    if database is not None and not is_file(root / database.password_file):
        problems.append(
            f"{source}: database/password_file: {database.password_file!r} does not exist; create it "
            "(`composekit init --template fastapi-postgres` writes one, or "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "
            f"{database.password_file}`) and keep it out of git"
        )
    s3 = config.backups.s3 if config.backups is not None else None
    if s3 is not None and not is_file(root / s3.secret_access_key_file):
        problems.append(
            f"{source}: backups/s3/secret_access_key_file: {s3.secret_access_key_file!r} does not exist; put the "
            "bucket's secret access key in it (alone on one line) and keep it out of git"
        )
    for name, accessory in sorted(config.accessories.items()):
        needed = {"password_file": accessory.password_file} if accessory.password_file is not None else {}
        needed.update({f"secrets/{k}": v for k, v in sorted(accessory.secrets.items())})
        for key, value in needed.items():
            if not is_file(root / value):
                problems.append(
                    f"{source}: accessories/{name}/{key}: {value!r} does not exist; create it (such as "
                    f"`python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {value}`) and keep it out of git"
                )
    for i, ca in enumerate(config.acme.ca_certificates):
        ca_path = Path(ca) if Path(ca).is_absolute() else root / ca
        if not is_file(ca_path):
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
