"""Runs a command with secrets in its process environment, read from files at start: the app's and the migration's
command when app/secrets or database/variables is set. Standard library only; it ships into the containers.

    python3 -I -B secret_env.py [--env NAME FILE]... [--url NAME TEMPLATE FILE]... -- COMMAND [ARG]...

--env NAME FILE: NAME is the file's content. --url NAME TEMPLATE FILE: NAME is TEMPLATE with "{password}" replaced
by the file's content, percent-encoded (a password in a URL's userinfo). Trailing newlines of a file are dropped, as
the PostgreSQL image drops them from its password file. Then COMMAND replaces this process (same PID, signals reach
it directly): the values live in the process environment only, never in the container's configuration, so
`docker inspect` shows the names and paths on this command line, not a value. Nothing here prints a value.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn
from urllib.parse import quote

USAGE = "usage: secret_env.py [--env NAME FILE]... [--url NAME TEMPLATE FILE]... -- COMMAND [ARG]..."
PLACEHOLDER = "{password}"


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"secret_env: {message}\n")
    sys.exit(2)


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        _fail(f"{name}: cannot read {path}: {exc.strerror}")
    data = data.rstrip(b"\n")
    if b"\0" in data:
        _fail(f"{name}: {path} holds a NUL byte, which no environment variable can carry")
    return data


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """The variables to add (name -> value) and the command, from this script's arguments."""
    env: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0] != "--":
        option = rest.pop(0)
        if option == "--env" and len(rest) >= 2:
            name, path = rest.pop(0), rest.pop(0)
            env[name] = os.fsdecode(_read(name, path))
        elif option == "--url" and len(rest) >= 3:
            name, template, path = rest.pop(0), rest.pop(0), rest.pop(0)
            if PLACEHOLDER not in template:
                _fail(f"{name}: the template holds no {PLACEHOLDER}")
            env[name] = template.replace(PLACEHOLDER, quote(_read(name, path), safe=""))
        else:
            _fail(USAGE)
    if len(rest) < 2:
        _fail(USAGE)
    return env, rest[1:]


def main() -> None:
    env, command = parse(sys.argv[1:])
    environment = dict(os.environ)
    environment.update(env)
    try:
        os.execvpe(command[0], command, environment)
    except OSError as exc:
        _fail(f"cannot run {command[0]}: {exc.strerror}")


if __name__ == "__main__":
    main()
