"""What `up` checks in the app image right after the build (verify/image_contract.py): what the config runs in it,
the probe that looks (run here for real with this machine's python3), and the findings with their fixes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from composekit.config import parse_config
from composekit.verify.image_contract import PROBE, WORKER_MODULES, expectations, probe_args, problems

from .image_probe import probe_output

MINIMAL: dict[str, Any] = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_what_the_config_runs_in_the_image(tmp_path: Path) -> None:
    write(tmp_path, {"src/alembic.ini": "", "scripts/cleanup.py": "", "app/main.py": ""})
    config = parse_config(
        {
            **MINIMAL,
            "migrate": {"command": "alembic -c src/alembic.ini upgrade head"},
            "processes": {"worker": "arq app.worker.WorkerSettings"},
            "schedules": {"cleanup": {"cron": "0 3 * * *", "command": "python3 scripts/cleanup.py --days 7"}},
        }
    )
    want = expectations(config, tmp_path)
    assert set(want.programs) == {"gunicorn", "alembic", "arq", "python3"}
    assert want.programs["alembic"] == "migrate/command" and want.programs["arq"] == "processes/worker"
    # Words that name files of the repository must be in the image; the rest (head, a dotted class) are not paths.
    assert want.paths == {"src/alembic.ini": "migrate/command", "scripts/cleanup.py": "schedules/cleanup"}
    assert set(want.modules) == {"app"} and want.worker
    asked = json.loads(probe_args(want)[0])
    assert asked["modules"] == ["app", *WORKER_MODULES]


def test_of_a_shell_script_only_the_shell_and_its_leading_cds_are_checked(tmp_path: Path) -> None:
    write(tmp_path, {"src/db/alembic.ini": "", "src/migrations/env.py": "", "seed.py": ""})
    config = parse_config({**MINIMAL, "migrate": {"command": "sh -c 'cd src && cd db && exec alembic upgrade head'"}})
    want = expectations(config, tmp_path)
    assert set(want.programs) == {"gunicorn", "sh"}
    assert want.paths == {"src": "migrate/command", "src/db": "migrate/command"}
    # test_hardening's migration: a quoted multi-line Python program, keywords, conditions: none of it is a program
    # the image must have (a check of those refused a deploy that works).
    flood = "import sys\nfor i in range(3):\n    sys.stdout.write(f'flood {i}\\n')\n"
    script = f'python3 -c "{flood}" && if [ -f seed.py ]; then python3 seed.py; fi && cd /elsewhere && cd src'
    want = expectations(parse_config({**MINIMAL, "migrate": {"command": ["sh", "-c", script]}}), tmp_path)
    assert set(want.programs) == {"gunicorn", "sh"} and want.paths == {}
    # An absolute or upward cd is not the repository's: never looked up on this machine.
    for away in ("/elsewhere", "../x"):
        command = ["bash", "-c", f"cd {away} && cd src && alembic upgrade head"]
        assert expectations(parse_config({**MINIMAL, "migrate": {"command": command}}), tmp_path).paths == {}


def test_an_inline_script_is_not_taken_for_a_file(tmp_path: Path) -> None:
    script = "import sys; " + "print('x.y'); " * 40 + "sys.exit(0)"  # one word, longer than a file name may be
    config = parse_config({**MINIMAL, "migrate": {"command": ["python3", "-c", script]}})
    want = expectations(config, tmp_path)
    assert want.paths == {} and set(want.programs) == {"gunicorn", "python3"}


def test_swarm_without_workers_runs_uvicorn_not_gunicorn(tmp_path: Path) -> None:
    want = expectations(parse_config(MINIMAL), tmp_path, server="uvicorn")
    assert "gunicorn" not in want.programs and not want.worker
    assert set(want.modules) == {"uvicorn", "app"}


def test_an_image_with_everything_passes_and_says_whether_it_runs_as_root(tmp_path: Path) -> None:
    write(tmp_path, {"src/alembic.ini": ""})
    want = expectations(
        parse_config({**MINIMAL, "migrate": {"command": "alembic -c src/alembic.ini upgrade head"}}), tmp_path
    )
    assert problems(want, probe_output(probe_args(want)), own_dockerfile=True) == ([], False)
    assert problems(want, probe_output(probe_args(want), uid=0), own_dockerfile=True) == ([], True)


@pytest.mark.parametrize(
    ("missing", "problem", "fix"),
    [
        (
            {"gunicorn"},
            "composekit runs the app with `gunicorn --config ... app.main:app`: `gunicorn` is not on the image's PATH",
            "install gunicorn and uvicorn-worker in the image (add them to the dependencies your Dockerfile installs)",
        ),
        (
            set(WORKER_MODULES),
            "gunicorn runs uvicorn workers",
            "add uvicorn-worker to the dependencies your Dockerfile installs",
        ),
        (
            {"app"},
            "app/module app.main:app: Python finds no `app` from the image's working directory /code",
            "copy the code so that /code/app exists",
        ),
        (
            {"src/alembic.ini"},
            "migrate/command names src/alembic.ini, which is in the repository but not in the image (its working "
            "directory /code has no src/alembic.ini)",
            "copy it into the image at /code/src/alembic.ini (your Dockerfile's COPY), or change migrate/command",
        ),
        (
            {"alembic"},
            "migrate/command: `alembic` is not on the image's PATH",
            "install it in the image",
        ),
    ],
)
def test_each_thing_the_image_lacks_is_named_with_its_fix(
    tmp_path: Path, missing: set[str], problem: str, fix: str
) -> None:
    write(tmp_path, {"src/alembic.ini": ""})
    config = parse_config({**MINIMAL, "migrate": {"command": "alembic -c src/alembic.ini upgrade head"}})
    want = expectations(config, tmp_path)
    found, _ = problems(want, probe_output(probe_args(want), frozenset(missing), cwd="/code"), own_dockerfile=True)
    assert len(found) == 1, found
    assert problem in found[0].problem
    assert fix in found[0].fix


def test_a_program_in_a_venv_off_the_path_gets_the_path_as_its_fix(tmp_path: Path) -> None:
    """Poetry's in-project venv (nsidnev/fastapi-realworld-example-app's Dockerfile runs `poetry run`)."""
    want = expectations(parse_config(MINIMAL), tmp_path)
    printed = probe_output(probe_args(want), frozenset({"gunicorn"}), elsewhere={"gunicorn": "/app/.venv/bin"})
    found, _ = problems(want, printed, own_dockerfile=True)
    assert [f.fix for f in found] == [
        "put /app/.venv/bin on the image's PATH (`ENV PATH=/app/.venv/bin:$PATH` in your Dockerfile): `gunicorn` is "
        "there"
    ]


def test_one_worker_class_of_the_two_is_enough(tmp_path: Path) -> None:
    want = expectations(parse_config(MINIMAL), tmp_path)
    for has in WORKER_MODULES:
        others = frozenset(WORKER_MODULES) - {has}
        assert problems(want, probe_output(probe_args(want), others), own_dockerfile=False)[0] == []


def test_the_probe_reports_what_a_real_interpreter_finds(tmp_path: Path) -> None:
    """PROBE run by this machine's Python in a directory standing for the image's working directory."""
    write(
        tmp_path, {"app/__init__.py": "raise SystemExit('the probe must not import the app')\n", "src/alembic.ini": ""}
    )
    tool = tmp_path / ".venv" / "bin" / "composekit-probe-tool"  # a project venv the PATH does not name
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    asked = {
        "programs": ["python3", "no-such-program-here", "composekit-probe-tool"],
        "paths": ["src/alembic.ini", "src/missing.ini"],
        "modules": ["app", "json", "no_such_module_here", "no_such_package.workers"],
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(asked)], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["cwd"] == str(tmp_path)
    assert seen["programs"]["python3"] and seen["programs"]["no-such-program-here"] is None
    assert seen["programs"]["composekit-probe-tool"] is None
    assert seen["elsewhere"] == {"composekit-probe-tool": str(tmp_path / ".venv" / "bin")}
    assert seen["paths"] == {"src/alembic.ini": True, "src/missing.ini": False}
    assert seen["modules"] == {
        "app": True,
        "json": True,
        "no_such_module_here": False,
        "no_such_package.workers": False,
    }
