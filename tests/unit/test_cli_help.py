"""`--help` of the app, of every command group and of every command, through the installed console script (a
bracket in a help text once made the top-level help end in rich's MarkupError), and no help text that rich's markup
would change."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from rich.text import Text
from typer.testing import CliRunner

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


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    done = run_script(args)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def _option_names(command: Any) -> list[str]:
    options = [p for p in command.params if p.param_type_name == "option"]
    return [name for p in options for name in (*p.opts, *p.secondary_opts)]


def test_the_console_script_imports_the_code_under_test() -> None:
    interpreter = script().read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
    probe = subprocess.run(
        [interpreter, "-c", "import composekit; print(composekit.__file__)"],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=60,
    )
    assert Path(probe.stdout.strip()).resolve() == Path(composekit.__file__).resolve(), probe.stderr


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(("composekit", *p)))
def test_help_of_every_command_exits_0_and_lists_its_options(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    done = _run([*path, "--help"])
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == 0, output
    for name in _option_names(command):
        assert name in done.stdout, f"{name} missing from `composekit {' '.join(path)} --help`:\n{done.stdout}"
    first_line = (command.help or "").strip().splitlines()[0]
    assert Text.from_markup(first_line).plain in done.stdout


@pytest.mark.parametrize("columns", ["80", "250"])
def test_top_level_help_shows_the_host_forms_as_written(columns: str) -> None:
    done = run_script(["--help"], env=script_env(COLUMNS=columns, TERMINAL_WIDTH=columns))
    output = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    for name in ("--host", "-H", "--config", "-c", "--help"):
        assert name in output
    assert "ssh://[user@]host[:port]" in output  # the brackets shown, not read as markup, not cut at 80 columns
    assert "/run/user/1000/docker.sock" in output.replace("\n", "").replace("│", "").replace(" ", "")


def test_bare_composekit_shows_the_help_without_a_traceback() -> None:
    done = _run([])
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode in (0, 2), output  # typer's no_args_is_help exits 2 with click 8.2+
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
