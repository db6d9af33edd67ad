"""The templates of `composekit init --template`: the directories of ``stacks/`` (installed as the
``composekit.stacks`` package data). A template contributes its config sections (a database, say) to an existing
app, and its whole example app to an empty directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import yaml

from ..config.load import parse_config
from ..config.model import (
    CONFIG_FILENAME,
    Config,
)
from ..errors import ConfigError, TemplateError

__all__ = ["DEFAULT_TEMPLATE", "SCHEMA_FILENAME", "SECRETS_DIR", "Template", "list_templates", "load_template"]


DEFAULT_TEMPLATE = "fastapi"


SCHEMA_FILENAME = "composekit.schema.json"


SECRETS_DIR = "secrets"


def _templates_root() -> Traversable:
    """``stacks/`` as installed package data, or the source checkout's during development."""
    try:
        root = resources.files("composekit.stacks")
        if root.is_dir():
            return root
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "stacks"


@dataclass(frozen=True)
class Template:
    """A maintained example stack: its composekit.yaml and its app files."""

    name: str
    root: Traversable
    config: Config

    @property
    def description(self) -> str:
        first = self.root.joinpath(CONFIG_FILENAME).read_text(encoding="utf-8").splitlines()[0]
        return first.lstrip("# ").removeprefix(f"{CONFIG_FILENAME}: ")

    def files(self) -> Iterator[tuple[str, bytes]]:
        """The example app's files (relative POSIX path, content), without its config and caches."""
        yield from _walk(self.root, "")


def _walk(node: Traversable, prefix: str) -> Iterator[tuple[str, bytes]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        rel = f"{prefix}{child.name}"
        if child.name in ("__pycache__", ".composekit", SECRETS_DIR) or child.name.endswith((".pyc", ".lock")):
            continue
        if child.is_dir():
            yield from _walk(child, rel + "/")
        elif rel not in (CONFIG_FILENAME, "composekit.override.yaml", SCHEMA_FILENAME):
            yield rel, child.read_bytes()


def list_templates() -> list[str]:
    root = _templates_root()
    if not root.is_dir():
        return []
    return sorted(c.name for c in root.iterdir() if c.is_dir() and c.joinpath(CONFIG_FILENAME).is_file())


def load_template(name: str) -> Template:
    known = list_templates()
    if name not in known:
        raise TemplateError(
            f"init: unknown template {name!r}; choose one of: {', '.join(known) or '(none installed)'} "
            "(--template NAME)"
        )
    root = _templates_root().joinpath(name)
    source = f"template {name}: {CONFIG_FILENAME}"
    try:
        config = parse_config(yaml.safe_load(root.joinpath(CONFIG_FILENAME).read_text(encoding="utf-8")), source)
    except ConfigError as exc:  # a broken template is composekit's bug, not the user's
        raise RuntimeError("\n".join(exc.problems)) from None
    return Template(name=name, root=root, config=config)
