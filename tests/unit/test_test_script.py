"""scripts/test.sh, run for real on a copy with a tiny suite: `--unit` runs the unit tier alone, in parallel, with no
setup, lint or Docker; without arguments the unit tier and the integration tier run as two pytest runs, and a
failure of either makes the script fail after both ran. The machine's scripts (setup-env.sh, lint.sh, pebble.sh,
sshd.sh) and `docker` are stand-ins that only note that they ran."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PASSING = "def test_passes() -> None:\n    assert True\n"
FAILING = "def test_fails() -> None:\n    assert False\n"


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _repo(tmp_path: Path, unit: str, integration: str) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    ran = tmp_path / "ran"
    ran.mkdir(parents=True)
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "test.sh", repo / "scripts" / "test.sh")
    for name in ("setup-env.sh", "lint.sh", "pebble.sh", "sshd.sh"):
        _executable(repo / "scripts" / name, f'touch "{ran}/{name}"\n')
    for tier, body in (("unit", unit), ("integration", integration)):
        (repo / "tests" / tier).mkdir(parents=True)
        (repo / "tests" / tier / f"test_{tier}.py").write_text(body)
    # The tiny suite needs only pytest and xdist: the venv's other pytest plugins stay unloaded (half of each of the
    # dozen pytest starts here).
    blocked = "-p no:cacheprovider -p no:hypothesispytest -p no:anyio -p no:platformdirs"
    (repo / "pyproject.toml").write_text(f"[tool.pytest.ini_options]\naddopts = '{blocked}'\n")
    # The project venv's python, and a docker that sees no container.
    _executable(repo / ".venv" / "bin" / "python", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    _executable(tmp_path / "bin" / "docker", "#!/bin/sh\nexit 0\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "env").write_text(f"COMPOSEKIT_TESTENV={state}\n")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "COMPOSEKIT_TESTENV": str(state)}
    return repo, env


def _run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "test.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=repo,
    )


def test_the_unit_tier_runs_alone_in_parallel_with_no_setup(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path, PASSING, FAILING)
    done = _run(repo, env, "--unit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created: " in done.stdout and " workers" in done.stdout  # pytest-xdist
    assert done.stdout.rstrip().splitlines()[-1].startswith("=") and " 1 passed" in done.stdout
    assert "test_integration" not in done.stdout
    assert sorted(p.name for p in (tmp_path / "ran").iterdir()) == []


def test_the_whole_suite_runs_both_tiers_and_fails_when_either_fails(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path, FAILING, PASSING)
    # The unit tier's `-n auto` with one worker: a test of one test needs no second one (the --unit test above checks
    # that the tier runs in parallel); each worker is a pytest start, a third of a second of CPU.
    env["PYTEST_XDIST_AUTO_NUM_WORKERS"] = "1"
    done = _run(repo, env)
    assert done.returncode == 1, done.stdout + done.stderr
    # Both tiers ran, each its own pytest: the unit tier's failure did not stop the integration tier.
    assert "tests/unit/test_unit.py::test_fails" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("=") and " 1 passed" in done.stdout.splitlines()[-1]
    assert "unit tier exited 1, integration tier exited 0" in done.stderr
    assert sorted(p.name for p in (tmp_path / "ran").iterdir()) == ["lint.sh", "pebble.sh", "setup-env.sh", "sshd.sh"]

    repo, env = _repo(tmp_path / "again", PASSING, FAILING)
    env["PYTEST_XDIST_AUTO_NUM_WORKERS"] = "1"
    done = _run(repo, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "unit tier exited 0, integration tier exited 1" in done.stderr
