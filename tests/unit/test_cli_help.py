"""`--help` of the app, of every command group and of every command (a bracket in a help text once made the top-level
help end in rich's MarkupError), and no help text that rich's markup would change.

One check runs the installed console script for real (`composekit --help`: a crashing `--help` once hid behind a
green suite); the help of each command is rendered in-process by typer's CliRunner, through the same click command
and rich renderer the script runs, with the script's width and no colour."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.rich_utils
import yaml
from rich.text import Text
from typer.testing import CliRunner, Result

import composekit
from composekit.cli import app

from .console_script import run_script, script, script_env

ROOT = typer.main.get_command(app)


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and command group under the app (the app itself first), read from the typer app itself (click's
    classes, which typer 0.29 vendors: a group is what has `commands`)."""
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(ROOT)
assert len(COMMANDS) > 10, COMMANDS  # the walk found the commands


def _option_names(command: Any) -> list[str]:
    options = [p for p in command.params if p.param_type_name == "option"]
    return [name for p in options for name in (*p.opts, *p.secondary_opts)]


@pytest.fixture
def help_at(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `composekit ARGS` in-process as the console script runs under script_env(): rich's width from
    TERMINAL_WIDTH and COLUMNS (typer reads TERMINAL_WIDTH once, at import), no forced terminal, no colour."""

    def run(args: list[str], columns: str = "250") -> Result:
        monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", int(columns))
        monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", None)
        return CliRunner().invoke(app, args, env={"COLUMNS": columns, "NO_COLOR": "1"})

    return run


def test_the_console_script_imports_the_code_under_test() -> None:
    """The script's interpreter finds this checkout's composekit (where `import composekit` would load it from)."""
    interpreter = script().read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
    probe = subprocess.run(
        [interpreter, "-c", "import importlib.util; print(importlib.util.find_spec('composekit').origin)"],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=60,
    )
    assert Path(probe.stdout.strip()).resolve() == Path(composekit.__file__).resolve(), probe.stderr


def test_the_cli_starts_without_importing_httpx() -> None:
    """Every `composekit` run imports the CLI; httpx (with its own CLI's click, rich and pygments: ~80 ms of CPU) is
    imported by the first HTTP request (verify/http.py), so `down`, `status`, `logs` and the like never pay for it."""
    interpreter = script().read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
    code = "import sys, composekit.cli; print(sorted(m for m in ('httpx', 'pygments') if m in sys.modules))"
    probe = subprocess.run([interpreter, "-c", code], capture_output=True, text=True, env=script_env(), timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_the_console_script_shows_the_help_at_80_columns() -> None:
    """The one real `composekit --help`: it exits 0 with no traceback and lists every option and command, the host
    forms shown as written (not read as markup, not cut at 80 columns)."""
    done = run_script(["--help"], env=script_env(COLUMNS="80", TERMINAL_WIDTH="80"))
    output, errors = done.stdout.decode(), done.stderr.decode()
    assert "Traceback" not in output + errors, output + errors
    assert done.returncode == 0, errors
    for name in (
        "--host",
        "-H",
        "--config",
        "-c",
        "--help",
        *_option_names(ROOT),
        *(p[0] for p, _ in COMMANDS if len(p) == 1),
    ):
        assert name in output, f"{name} missing from `composekit --help`:\n{output}"
    assert "ssh://[user@]host[:port]" in output
    assert "/run/user/1000/docker.sock" in output.replace("\n", "").replace("│", "").replace(" ", "")


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(("composekit", *p)))
def test_help_of_every_command_exits_0_and_lists_its_options(
    path: tuple[str, ...], help_at: Callable[..., Result]
) -> None:
    command = dict(COMMANDS)[path]
    done = help_at([*path, "--help"])
    output = done.stdout + done.stderr
    assert done.exception is None or (type(done.exception) is SystemExit and done.exit_code == 0), repr(done.exception)
    assert "Traceback" not in output, output
    assert done.exit_code == 0, output
    for name in _option_names(command):
        assert name in done.stdout, f"{name} missing from `composekit {' '.join(path)} --help`:\n{done.stdout}"
    first_line = (command.help or "").strip().splitlines()[0]
    assert Text.from_markup(first_line).plain in done.stdout


@pytest.mark.parametrize("columns", ["80", "250"])
def test_top_level_help_shows_the_host_forms_as_written(columns: str, help_at: Callable[..., Result]) -> None:
    done = help_at(["--help"], columns)
    output = done.stdout
    assert done.exit_code == 0 and done.exception is None, done.output
    for name in ("--host", "-H", "--config", "-c", "--help"):
        assert name in output
    assert "ssh://[user@]host[:port]" in output  # the brackets shown, not read as markup, not cut at 80 columns
    assert "/run/user/1000/docker.sock" in output.replace("\n", "").replace("│", "").replace(" ", "")


def test_bare_composekit_shows_the_help_without_a_traceback(help_at: Callable[..., Result]) -> None:
    done = help_at([])
    output = done.stdout + done.stderr
    assert done.exception is None or type(done.exception) is SystemExit, repr(done.exception)
    assert "Traceback" not in output, output
    assert done.exit_code in (0, 2), output  # typer's no_args_is_help exits 2 with click 8.2+
    assert "--host" in output and "render" in output


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(("composekit", *p)))
def test_no_help_text_is_changed_by_rich_markup(path: tuple[str, ...]) -> None:
    """typer renders help, docstrings and epilogs as rich markup: a bracket that looks like a tag must be escaped."""
    command = dict(COMMANDS)[path]
    texts = [command.help, command.short_help, command.epilog, *(getattr(p, "help", None) for p in command.params)]
    for text in filter(None, texts):
        assert Text.from_markup(text).plain == text.replace("\\[", "["), text


def test_paths_with_brackets_are_printed_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "requirements.txt").write_text("fastapi\n", encoding="utf-8")
    (tmp_path / "app.env").write_text("SECRET_KEY=x\n", encoding="utf-8")
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app", "env_file": "app.env"}}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "--out", "build[/x]"])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path}/build[/x]/compose.yaml\n" in result.stderr
