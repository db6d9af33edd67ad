"""The database's migration state after a release's migration: which command reads it (migrate/state_command, or
`alembic current` derived from migrate/command) and what `alembic current` printed. Pure: steps.read_migration_state
runs the command; releases.py records the state and decides rollbacks on it."""

from __future__ import annotations

import os.path
import re
import shlex
from dataclasses import dataclass

from ..config.sections import Migrate

__all__ = ["StateCommand", "parse_alembic_current", "shell_script", "shell_segments", "state_command"]

_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
# Alembic's global options that take a value and choose what `current` reads: kept in the derived command.
_ALEMBIC_VALUE_OPTIONS = frozenset({"-c", "--config", "-n", "--name", "-x"})
# One line of `alembic current`: the revision id, then tags such as "(head)", "(mergepoint)", "(branch_a)".
_CURRENT_LINE = re.compile(r"^(?:Rev: )?([A-Za-z0-9_][A-Za-z0-9_.-]*)((?:\s+\([^()]*\))*)\s*$")


@dataclass(frozen=True)
class StateCommand:
    """How to read the database's migration state: ``argv`` in a one-shot container of the migrate service;
    ``alembic``: its stdout is `alembic current`'s, parsed into revision ids, else taken as it is (stripped)."""

    argv: tuple[str, ...]
    alembic: bool


def _argv(command: str | tuple[str, ...]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)  # as render/services.py does


def _alembic_options(argv: list[str]) -> list[str] | None:
    """The global options of an `alembic ...` command line (None when its program is not alembic)."""
    if not argv or os.path.basename(argv[0]) != "alembic":
        return None
    options: list[str] = []
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        name = option.split("=", 1)[0]
        if name in _ALEMBIC_VALUE_OPTIONS:
            options.append(option)
            if "=" not in option and rest:
                options.append(rest.pop(0))
    return options


def shell_script(argv: list[str]) -> str | None:
    """The script of a `sh -c SCRIPT ...` command line (bash, dash, ... and -ec too); None for any other command."""
    if len(argv) >= 3 and os.path.basename(argv[0]) in _SHELLS and argv[1].startswith("-") and "c" in argv[1]:
        return argv[2]
    return None


def shell_segments(script: str) -> list[list[str]]:
    """The simple commands of a shell script, split at ;, &&, ||, | and newlines (quotes respected)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.whitespace = " \t\r"
    segments: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and set(token) <= set(";&|\n"):
                segments.append([])
            else:
                for i, part in enumerate(token.split("\n")):
                    if i:
                        segments.append([])
                    if part:
                        segments[-1].append(part)
    except ValueError:  # unbalanced quotes: not a script composekit can read
        return []
    return [s for s in segments if s]


def state_command(migrate: Migrate) -> StateCommand | None:
    """migrate/state_command when set; else `alembic current` when migrate/command runs alembic (as its program,
    or in a `sh -c` script, after the script's `cd`s), with the same program and -c/-n/-x options; else None: the
    state is unknown."""
    if migrate.state_command is not None:
        return StateCommand(tuple(_argv(migrate.state_command)), alembic=False)
    if migrate.command is None:
        return None
    argv = _argv(migrate.command)
    candidates = [argv]
    script = shell_script(argv)
    shell = script is not None
    if script is not None:
        candidates = shell_segments(script)
    for i, candidate in enumerate(candidates):
        options = _alembic_options(candidate)
        if options is None:
            continue
        current = (candidate[0], *options, "current")
        # `cd DIR && alembic upgrade head`: alembic current must read the same ini, from the same directory.
        moves = [shlex.join(c) for c in candidates[:i] if shell and c[0] == "cd"]
        if moves:
            return StateCommand((argv[0], "-c", " && ".join([*moves, shlex.join(current)])), alembic=True)
        return StateCommand(current, alembic=True)
    return None


def parse_alembic_current(stdout: str) -> str | None:
    """The revision ids `alembic current` printed on stdout (several heads: sorted, comma-separated); None when it
    printed none (a database Alembic never migrated). Log lines (``INFO  [alembic...] ...``) are not revisions."""
    revisions = set()
    for line in stdout.splitlines():
        match = _CURRENT_LINE.match(line.strip())
        if match:
            revisions.add(match.group(1))
    return ",".join(sorted(revisions)) or None
