"""The package's import arrows (ARCHITECTURE.md): every module's imports, read with ast, point down the flow.

cli -> deploy -> {engine, verify} -> render -> config -> errors
verify may import engine (doctor asks the engine); engine may import render and config;
scaffold -> render, config; nothing imports cli; runtime/ imports nothing from composekit;
rich and typer only in cli/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "composekit"

# Which parts of composekit each part may import (besides itself). A part is a subpackage or a top-level module.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "config": frozenset({"errors"}),
    "render": frozenset({"config", "errors"}),
    "engine": frozenset({"render", "config", "errors"}),
    "verify": frozenset({"engine", "render", "config", "errors"}),
    "scaffold": frozenset({"render", "config", "errors"}),
    "deploy": frozenset({"engine", "verify", "render", "config", "errors"}),
    "cli": frozenset({"deploy", "engine", "verify", "scaffold", "render", "config", "errors"}),
    "runtime": frozenset(),  # ships into containers: the standard library only
    "__init__": frozenset({"deploy", "engine", "verify", "scaffold", "render", "config", "errors"}),
}
# Module-level exceptions, each with its reason. The target must itself import nothing but errors (checked below).
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("composekit.engine.probes", "composekit.verify.http"): "the probes through Traefik use the HTTP client",
}
DISPLAY_LIBRARIES = ("rich", "typer")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """composekit.engine.steps -> engine; composekit.deploy.swarm -> deploy; composekit -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of everything ``source`` imports, function-level imports included. ``from . import x``
    counts as importing the submodule ``x`` when the package has one, else the package itself."""
    found: list[str] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # from . import a, b: submodules (or names) of the package
                for alias in node.names:
                    sub = PACKAGE.parent.joinpath(*target.split("."), alias.name)
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    found.append(f"{target}.{alias.name}" if is_module else target)
            else:
                found.append(target)
    return found


def violations(module: str, imported: list[str]) -> list[str]:
    own = part_of(module)
    problems = []
    for target in imported:
        top = target.split(".")[0]
        if top in DISPLAY_LIBRARIES and own != "cli":
            problems.append(f"{module} imports {target}: display code belongs in composekit/cli/")
        if top != "composekit":
            continue
        if target == "composekit" and own != "__init__":
            problems.append(f"{module} imports the public API package composekit: import the module that owns it")
            continue
        other = part_of(target)
        if other == own and own != "__init__":
            continue
        if (module, target) in EXCEPTIONS:
            continue
        if other not in ALLOWED[own]:
            problems.append(f"{module} imports {target}: {own} may import only {sorted(ALLOWED[own]) or 'nothing'}")
    return problems


def all_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_import_points_down_the_flow() -> None:
    problems = []
    for module, path in all_modules():
        problems += violations(module, imports_of(path.read_text(), module, path.name == "__init__.py"))
    assert problems == []


def test_every_part_is_in_the_table() -> None:
    assert {part_of(module) for module, _ in all_modules()} <= set(ALLOWED)


@pytest.mark.parametrize("target", sorted({t for _, t in EXCEPTIONS}))
def test_an_exception_names_a_leaf_module(target: str) -> None:
    """An allowed sideways import may not bring the rest of its package along (or a cycle)."""
    path = PACKAGE.parent.joinpath(*target.split(".")).with_suffix(".py")
    inside = [t for t in imports_of(path.read_text(), target, False) if t.startswith("composekit")]
    assert inside and all(t == "composekit.errors" for t in inside)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "composekit.render.compose",
            "from ..engine.docker import Docker",
            "composekit.render.compose imports composekit.engine.docker: render may import only ['config', 'errors']",
        ),
        (
            "composekit.engine.steps",
            "def f():\n    from ..cli.app import err",
            "composekit.engine.steps imports composekit.cli.app: engine may import only ['config', 'errors', 'render']",
        ),
        (
            "composekit.verify.checks",
            "from rich.table import Table",
            "composekit.verify.checks imports rich.table: display code belongs in composekit/cli/",
        ),
        (
            "composekit.runtime.gunicorn_conf",
            "import composekit.config",
            "composekit.runtime.gunicorn_conf imports composekit.config: runtime may import only nothing",
        ),
        (
            "composekit.config.model",
            "from .. import errors, render",
            "composekit.config.model imports composekit.render: config may import only ['errors']",
        ),
        (
            "composekit.deploy.compose",
            "from .. import cli",
            "composekit.deploy.compose imports composekit.cli: deploy may import only "
            "['config', 'engine', 'errors', 'render', 'verify']",
        ),
        (
            "composekit.deploy.swarm",
            "def f():\n    from ..cli.stack import up",
            "composekit.deploy.swarm imports composekit.cli.stack: deploy may import only "
            "['config', 'engine', 'errors', 'render', 'verify']",
        ),
        (
            "composekit.engine.steps",
            "from ..deploy.self_check import self_check",
            "composekit.engine.steps imports composekit.deploy.self_check: engine may import only "
            "['config', 'errors', 'render']",
        ),
        (
            "composekit.render.compose",
            "from .routes_volume import ROUTES\nfrom ..verify.http import get",
            "composekit.render.compose imports composekit.verify.http: render may import only ['config', 'errors']",
        ),
    ],
)
def test_the_checker_catches_an_arrow_pointing_up(module: str, source: str, expected: str) -> None:
    assert violations(module, imports_of(source, module, False)) == [expected]


def test_the_checker_accepts_arrows_pointing_down() -> None:
    source = "from ..config import Config\nfrom .docker import Docker\nfrom ..render.stack import write_stack\n"
    assert violations("composekit.engine.steps", imports_of(source, "composekit.engine.steps", False)) == []
