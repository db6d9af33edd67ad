"""The docs cannot drift from the code: every config key of the JSON Schema is in docs/configuration.md, every
command, command group and option of the CLI is in its section of docs/commands.md, every relative link of
README.md and docs/ reaches a file (and heading) that exists, and the README stays short."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from composekit.cli import app
from composekit.config.schema import config_schema

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 250
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _objects(node: dict[str, Any], defs: dict[str, Any], suffix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The object schemas a value may be, with what its keys' paths gain: "" for the value itself, "[]" for the
    items of a list (`smoke/checks[]/path`), "/*" for the values of a free-form mapping."""
    node = _resolve(node, defs)
    if "properties" in node:
        yield suffix, node
    for alternative in node.get("anyOf", []) + node.get("oneOf", []) + node.get("allOf", []):
        yield from _objects(alternative, defs, suffix)
    if isinstance(node.get("items"), dict):
        yield from _objects(node["items"], defs, suffix + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _objects(node["additionalProperties"], defs, suffix + "/*")


def config_keys() -> list[str]:
    """Every key of composekit.yaml as the error messages name it: `app/workers`, `smoke/checks[]/path`."""
    schema = config_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    keys: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for suffix, obj in _objects(node, defs):
            for name, child in obj["properties"].items():
                path = f"{prefix}{suffix}/{name}" if prefix else name
                keys.append(path)
                walk(child, path)

    walk(schema, "")
    return sorted(set(keys))


def commands() -> dict[str, list[str]]:
    """Every command and command group (`engine`, `engine configure`) with its options, long and short."""
    found: dict[str, list[str]] = {}

    def walk(command: Any, prefix: str) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            path = f"{prefix} {name}".strip()
            found[path] = _options(sub)
            walk(sub, path)

    walk(typer.main.get_command(app), "")
    return found


def _options(command: Any) -> list[str]:
    return [opt for param in command.params for opt in [*param.opts, *param.secondary_opts] if opt.startswith("-")]


def _prose(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (a `# comment` in a console block is no heading)."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (backticks, dots, colons, slashes), spaces
    to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in _prose(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def section(text_lines: list[str], title: str) -> str:
    """The lines under the heading whose text is `title`, up to the next heading of the same or a higher level."""
    for i, line in enumerate(text_lines):
        match = HEADING.match(line)
        if match and match.group(2) == title:
            level = len(match.group(1))
            body = []
            for following in text_lines[i + 1 :]:
                next_heading = HEADING.match(following)
                if next_heading and len(next_heading.group(1)) <= level:
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"docs/commands.md has no heading {title!r}")


def mentions(text: str, option: str) -> bool:
    """The option as a word of its own: `-f` in `-f/--follow`, not inside `--file` or `-fo`."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_readme_is_short() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


def test_the_schema_walk_finds_nested_keys() -> None:
    keys = config_keys()
    assert {"name", "app/workers", "database/password_file", "smoke/checks[]/json_key", "swarm/nodes"} <= set(keys)


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_in_the_configuration_reference(key: str) -> None:
    reference = (DOCS / "configuration.md").read_text()
    assert f"`{key}`" in reference, f"docs/configuration.md does not document `{key}` (a key of `composekit schema`)"


def test_every_command_and_group_is_found() -> None:
    assert {"up", "rollback", "engine", "engine configure"} <= set(commands())


@pytest.mark.parametrize(("command", "options"), sorted(commands().items()), ids=sorted(commands()))
def test_every_command_and_its_options_are_in_the_commands_page(command: str, options: list[str]) -> None:
    body = section(_prose(DOCS / "commands.md"), f"`composekit {command}`")
    missing = [option for option in options if not mentions(body, option)]
    assert not missing, f"docs/commands.md, section `composekit {command}`: options not documented: {missing}"


def test_the_global_options_are_in_the_commands_page() -> None:
    body = section(_prose(DOCS / "commands.md"), "Global options")
    missing = [option for option in _options(typer.main.get_command(app)) if not mentions(body, option)]
    assert not missing, f"docs/commands.md, section Global options: not documented: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for line in _prose(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{target}: no file {linked}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target}: no heading with the anchor #{anchor} in {linked.name}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)
