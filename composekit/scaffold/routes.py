"""The health route of a FastAPI app, read statically (ast) with its router prefixes composed.

A route on an ``APIRouter(prefix=...)`` included by ``app.include_router(router, prefix=...)`` (through any
number of routers) gets every prefix on its way from the app. Prefixes are resolved when they are string
constants, module-level string constants (imported or not), simple attribute constants of a settings class's
default (``settings.API_V1_STR`` where ``settings = Settings()`` and ``API_V1_STR: str = "/api/v1"``), f-strings
and ``+`` of those. What cannot be resolved is reported, never guessed. Reads only."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HealthRoute", "RouteScan", "Unresolved", "find_health_routes", "is_health_path"]


# A path segment that names a health endpoint, in order of preference (readiness says "can serve").
_HEALTH_WORDS = (
    re.compile(r"^_?health([-_]?check)?z?$|^_?healthcheck$|^_?status[-_]health$"),
    re.compile(r"^ready(z|ness)?$"),
    re.compile(r"^live(z|ness)?$"),
    re.compile(r"^ping$"),
)
_MAX_DEPTH = 12


def is_health_path(path: str) -> int | None:
    """The preference rank (0 best) of a route path that names health/healthz/ping/live/ready, else None."""
    segments = [s for s in path.lower().split("/") if s]
    ranks = [i for s in segments for i, word in enumerate(_HEALTH_WORDS) if word.match(s)]
    return min(ranks) if ranks else None


@dataclass(frozen=True)
class HealthRoute:
    path: str  # the full path, every prefix applied
    file: str  # where the route is declared, relative to the scanned root
    line: int


@dataclass(frozen=True)
class Unresolved:
    """A health route whose full path depends on a prefix that cannot be read statically."""

    route: str  # the route's path below the prefix (router prefixes below it composed)
    expression: str  # the prefix, as written
    file: str
    line: int
    above: str = ""  # the prefixes above it, composed


@dataclass
class RouteScan:
    found: list[HealthRoute] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)

    @property
    def best(self) -> HealthRoute | None:
        ranked = sorted(self.found, key=lambda r: (is_health_path(r.path) or 0, r.path.count("/"), r.path))
        return ranked[0] if ranked else None


class _CannotResolve(Exception):
    def __init__(self, node: ast.expr) -> None:
        super().__init__(ast.unparse(node))
        self.node = node


@dataclass
class _Module:
    name: str
    file: str
    tree: ast.Module
    is_package: bool
    constants: dict[str, ast.expr] = field(default_factory=dict)  # module-level NAME = <expr>
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local -> (module, name or None)
    apps: set[str] = field(default_factory=set)  # names bound to FastAPI(...) anywhere in the module
    routers: dict[str, ast.Call] = field(default_factory=dict)  # names bound to APIRouter(...)


@dataclass(frozen=True)
class _Route:
    path_expr: ast.expr
    line: int


@dataclass(frozen=True)
class _Include:
    target: ast.expr
    prefix: ast.expr | None
    line: int


def _call_name(node: ast.AST | None) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _kwarg(call: ast.Call, name: str, position: int | None = None) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _absolute(module: _Module, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    parts = module.name.split(".") if module.name else []
    base = parts if module.is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([target] if target else [])])


def _index(name: str, file: str, tree: ast.Module, is_package: bool) -> _Module:
    module = _Module(name=name, file=file, tree=tree, is_package=is_package)
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            module.classes[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            module.constants[stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            module.constants[stmt.target.id] = stmt.value
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, node.level, node.module)
            for alias in node.names:
                module.imports[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    module.imports[alias.asname] = (alias.name, None)
                else:
                    module.imports[alias.name.split(".")[0]] = (alias.name.split(".")[0], None)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            kind = _call_name(node.value)
            for target in targets:
                if isinstance(target, ast.Name) and kind == "FastAPI":
                    module.apps.add(target.id)
                elif isinstance(target, ast.Name) and kind == "APIRouter" and isinstance(node.value, ast.Call):
                    module.routers[target.id] = node.value
    return module


class _Project:
    """Every module of an import root, and what resolving names across them needs."""

    def __init__(self, root: Path, files: list[Path]) -> None:
        self.root = root
        self.modules: dict[str, _Module] = {}
        for path in files:
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            if not parts or not all(p.isidentifier() for p in parts):
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            name = ".".join(parts)
            self.modules[name] = _index(name, path.relative_to(root).as_posix(), tree, is_package)

    # names -> what they are ---------------------------------------------------------------------------

    def lookup(self, module: _Module, name: str, depth: int = 0) -> tuple[_Module, str] | _Module | None:
        """What ``name`` in ``module`` is bound to: (module, name) of a definition, or a module."""
        if depth > _MAX_DEPTH:
            return None
        if name in module.constants or name in module.classes or name in module.apps or name in module.routers:
            return module, name
        if name in module.imports:
            source, imported = module.imports[name]
            if imported is None:
                return self.modules.get(source)
            if f"{source}.{imported}" in self.modules:
                return self.modules[f"{source}.{imported}"]
            other = self.modules.get(source)
            return None if other is None else self.lookup(other, imported, depth + 1)
        return None

    def resolve_ref(self, module: _Module, node: ast.expr) -> tuple[_Module, str] | _Module | None:
        if isinstance(node, ast.Name):
            return self.lookup(module, node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve_ref(module, node.value)
            if isinstance(owner, _Module):
                return self.lookup(owner, node.attr)
        return None

    # expressions -> strings ---------------------------------------------------------------------------

    def string(self, module: _Module, node: ast.expr, depth: int = 0) -> str:
        if depth > _MAX_DEPTH:
            raise _CannotResolve(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            out = ""
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    out += part.value
                elif isinstance(part, ast.FormattedValue) and part.format_spec is None and part.conversion == -1:
                    out += self.string(module, part.value, depth + 1)
                else:
                    raise _CannotResolve(node)
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.string(module, node.left, depth + 1) + self.string(module, node.right, depth + 1)
        if isinstance(node, ast.Name):
            ref = self.lookup(module, node.id)
            if isinstance(ref, tuple) and ref[1] in ref[0].constants:
                return self.string(ref[0], ref[0].constants[ref[1]], depth + 1)
        if isinstance(node, ast.Attribute):
            return self._attribute(module, node, depth)
        raise _CannotResolve(node)

    def _attribute(self, module: _Module, node: ast.Attribute, depth: int) -> str:
        owner = self.resolve_ref(module, node.value)
        if isinstance(owner, _Module) and node.attr in owner.constants:
            return self.string(owner, owner.constants[node.attr], depth + 1)
        if isinstance(owner, tuple):
            home, name = owner
            cls: tuple[_Module, ast.ClassDef] | None = None
            if name in home.classes:
                cls = (home, home.classes[name])
            elif name in home.constants and isinstance(home.constants[name], ast.Call):
                # settings = Settings() (or get_settings() returning one is not followed)
                call = home.constants[name]
                assert isinstance(call, ast.Call)
                found = self.resolve_ref(home, call.func)
                if isinstance(found, tuple) and found[1] in found[0].classes:
                    cls = (found[0], found[0].classes[found[1]])
            if cls is not None:
                default = _class_default(cls[1], node.attr)
                if default is not None:
                    return self.string(cls[0], default, depth + 1)
        raise _CannotResolve(node)


def _class_default(cls: ast.ClassDef, attr: str) -> ast.expr | None:
    for stmt in cls.body:
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == attr
            and stmt.value is not None
        ):
            return stmt.value
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attr for t in stmt.targets):
            return stmt.value
    return None


def _routes_and_includes(module: _Module) -> tuple[dict[str, list[_Route]], dict[str, list[_Include]]]:
    """Per receiver name (an app or a router of the module): its GET routes and its include_router calls."""
    routes: dict[str, list[_Route]] = {}
    includes: dict[str, list[_Include]] = {}
    for node in ast.walk(module.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        if not isinstance(receiver, ast.Name):
            continue
        method = node.func.attr
        if method in ("get", "api_route", "add_api_route"):
            path = _kwarg(node, "path", 0)
            methods = _kwarg(node, "methods")
            if method != "get" and methods is not None and "GET" not in ast.unparse(methods).upper():
                continue
            if path is not None:
                routes.setdefault(receiver.id, []).append(_Route(path, node.lineno))
        elif method == "include_router":
            target = _kwarg(node, "router", 0)
            if target is not None:
                includes.setdefault(receiver.id, []).append(_Include(target, _kwarg(node, "prefix"), node.lineno))
    return routes, includes


def _python_files(root: Path, skip: set[str], limit: int) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in skip)
        out.extend(Path(dirpath) / n for n in sorted(filenames) if n.endswith(".py"))
        if len(out) > limit:
            return out[:limit]
    return out


def find_health_routes(root: Path, skip: set[str], limit: int = 5000) -> RouteScan:
    """Every GET route under ``root`` (an import root) whose path names health/healthz/ping/live/ready, each with
    the prefixes of the routers on its way from a FastAPI app; when no app reaches one, the routes of routers no
    app includes count with their router's own prefix."""
    project = _Project(root, _python_files(root, skip, limit))
    scan = RouteScan()
    tables = {name: _routes_and_includes(m) for name, m in project.modules.items()}
    reached: set[tuple[str, str]] = set()

    def health(module: _Module, route: _Route) -> str | None:
        try:
            path = project.string(module, route.path_expr)
        except _CannotResolve:
            return None
        return path if is_health_path(path) is not None else None

    def prefix_of(module: _Module, expr: ast.expr | None) -> str:
        if expr is None:
            return ""
        try:
            return project.string(module, expr)
        except _CannotResolve:
            return "{" + ast.unparse(expr) + "}"

    def below(
        module: _Module, receiver: str, prefix: str, stack: tuple[tuple[str, str], ...]
    ) -> Iterator[tuple[_Module, _Route, str]]:
        """Every route of ``receiver`` and of the routers it includes, with the prefixes below ``receiver``."""
        if (module.name, receiver) in stack or len(stack) > _MAX_DEPTH:
            return
        if receiver in module.routers:
            prefix += prefix_of(module, _kwarg(module.routers[receiver], "prefix"))
        routes, includes = tables[module.name]
        for route in routes.get(receiver, []):
            yield module, route, prefix
        for include in includes.get(receiver, []):
            target = project.resolve_ref(module, include.target)
            if isinstance(target, tuple):
                extra = prefix_of(module, include.prefix)
                yield from below(target[0], target[1], prefix + extra, (*stack, (module.name, receiver)))

    def unresolved(
        module: _Module, receiver: str, exc: _CannotResolve, file: str, line: int, own: bool, above: str
    ) -> None:
        """Health routes below a prefix that cannot be read: ``own`` when it is ``receiver``'s router prefix."""
        for home, route, prefix in below(module, receiver, "", ()):
            path = health(home, route)
            if path is not None:
                if own:  # the unreadable prefix is the first part of what below() composed
                    prefix = prefix.removeprefix("{" + exc.args[0] + "}")
                scan.unresolved.append(Unresolved(prefix + path, exc.args[0], file, line, above))

    def walk(module: _Module, receiver: str, prefix: str, stack: tuple[tuple[str, str], ...]) -> None:
        key = (module.name, receiver)
        if key in stack or len(stack) > _MAX_DEPTH:
            return
        reached.add(key)
        routes, includes = tables[module.name]
        if receiver in module.routers:
            router_prefix = _kwarg(module.routers[receiver], "prefix")
            if router_prefix is not None:
                try:
                    prefix += project.string(module, router_prefix)
                except _CannotResolve as exc:
                    unresolved(module, receiver, exc, module.file, router_prefix.lineno, own=True, above=prefix)
                    return
        for route in routes.get(receiver, []):
            path = health(module, route)
            if path is not None:
                scan.found.append(HealthRoute(prefix + path, module.file, route.line))
        for include in includes.get(receiver, []):
            target = project.resolve_ref(module, include.target)
            if not isinstance(target, tuple):
                continue
            extra = ""
            if include.prefix is not None:
                try:
                    extra = project.string(module, include.prefix)
                except _CannotResolve as exc:
                    unresolved(target[0], target[1], exc, module.file, include.line, own=False, above=prefix)
                    continue
            walk(target[0], target[1], prefix + extra, (*stack, key))

    for module in project.modules.values():
        for app in sorted(module.apps):
            walk(module, app, "", ())
    if not scan.found and not scan.unresolved:
        for module in project.modules.values():
            for receiver in sorted(module.routers):
                if (module.name, receiver) not in reached:
                    walk(module, receiver, "", ())
    return scan
