"""Shell scripts split into simple commands as sh splits them, for tests that check rendered shell code."""

from __future__ import annotations

import shlex


def sh_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, as sh splits them (quotes respected)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if set(token) <= set(";&|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]
