"""Files composekit reads and writes: an output directory it cannot write is a one-line error naming it and the fix,
and every text file is UTF-8 whatever the locale (an ASCII locale once ended `render` in a UnicodeEncodeError)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from composekit.cli import app

from .console_script import run_script, script_env

PACKAGE = Path(__file__).resolve().parents[2] / "composekit"
CONFIG = {
    "name": "shop",
    "domain": "shop.example.com",
    "app": {"module": "app.main:app", "env_file": "app.env", "environment": {"GREETING": "grüß dich, ¡olé!"}},
}


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "requirements.txt").write_text("fastapi\n", encoding="utf-8")
    (tmp_path / "app.env").write_text("SECRET_KEY=x\n", encoding="utf-8")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(CONFIG, allow_unicode=True), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_render_into_an_existing_file_is_one_line_naming_it(project_dir: Path) -> None:
    result = CliRunner().invoke(app, ["render", "--out", "requirements.txt"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: render: --out requirements.txt is a file, not a directory: name a directory (it is created if "
        "missing)\n"
    )
    assert (project_dir / "requirements.txt").read_text(encoding="utf-8") == "fastapi\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc (a directory nothing can create in)")
def test_render_into_a_directory_it_cannot_create_is_one_line_naming_it(project_dir: Path) -> None:
    result = CliRunner().invoke(app, ["render", "--out", "/proc/nope"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: render: cannot write /proc/nope (No such file or directory): name a directory you can write to "
        "with --out DIR\n"
    )


def test_render_under_an_ascii_locale_writes_and_prints_utf8(project_dir: Path) -> None:
    env = script_env(LC_ALL="POSIX", LANG="POSIX", PYTHONUTF8="0", PYTHONIOENCODING="")
    env.pop("PYTHONIOENCODING")
    for _ in range(2):  # the second run reads the files back and compares them
        done = run_script(["render"], env=env, cwd=project_dir)
        assert done.returncode == 0, done.stderr.decode()
    compose = (project_dir / ".composekit" / "compose.yaml").read_bytes()
    assert "GREETING: grüß dich, ¡olé!".encode() in compose
    check = run_script(["render", "--check"], env=env, cwd=project_dir)
    assert check.returncode == 0, check.stderr.decode()
    printed = run_script(["render", "--out", "-"], env=env, cwd=project_dir)
    assert printed.returncode == 0, printed.stderr.decode()
    assert "GREETING: grüß dich, ¡olé!".encode() in printed.stdout


def _missing_encoding(call: ast.Call) -> str | None:
    """What this call does with a text file without naming its encoding, or None."""
    func = call.func
    keywords = {k.arg for k in call.keywords}
    if "encoding" in keywords:
        return None
    mode = next((a.value for a in call.args[1:2] if isinstance(a, ast.Constant)), None)
    mode = next((k.value.value for k in call.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)), mode)
    binary = isinstance(mode, str) and "b" in mode
    if isinstance(func, ast.Attribute) and func.attr in ("read_text", "write_text"):
        return func.attr
    if isinstance(func, ast.Name) and func.id == "open" and not binary:
        return "open"
    if isinstance(func, ast.Attribute) and func.attr == "open" and not binary:
        receiver = func.value.id if isinstance(func.value, ast.Name) else ""
        if receiver not in ("os", "tarfile", "self"):  # file descriptors, archives, composekit's own open()
            mode = next((a.value for a in call.args[0:1] if isinstance(a, ast.Constant)), mode)
            if not (isinstance(mode, str) and "b" in mode):
                return f"{receiver or '...'}.open"
    if isinstance(func, ast.Attribute) and func.attr in ("run", "Popen", "check_output") and "text" in keywords:
        return f"subprocess.{func.attr}(text=True)"
    return None


def test_every_text_file_composekit_opens_names_its_encoding() -> None:
    """The locale's encoding (ASCII under LC_ALL=POSIX) is never used: every file composekit reads or writes is
    UTF-8, as its config loader reads them."""
    found = []
    # runtime/ runs inside the containers, on /proc and cgroup files (ASCII), and is shipped byte for byte in the
    # rendered files (a change there changes every stack's config hash): it is not what this test is about.
    for path in sorted(p for p in PACKAGE.rglob("*.py") if "runtime" not in p.relative_to(PACKAGE).parts):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Call) and (what := _missing_encoding(node)) is not None:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {what} without encoding=")
    assert found == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("p.read_text()", "read_text"),
        ("p.write_text(s)", "write_text"),
        ("open(f)", "open"),
        ("open(f, 'w')", "open"),
        ("p.open()", "p.open"),
        ("subprocess.run(a, text=True)", "subprocess.run(text=True)"),
        ("p.read_text(encoding='utf-8')", None),
        ("open(f, 'rb')", None),
        ("p.open('wb')", None),
        ("tarfile.open(f)", None),
        ("os.open(f, flags, 0o600)", None),
    ],
)
def test_the_encoding_check_sees_what_it_should(source: str, problem: str | None) -> None:
    call = ast.parse(source, mode="eval").body
    assert isinstance(call, ast.Call)
    assert _missing_encoding(call) == problem
