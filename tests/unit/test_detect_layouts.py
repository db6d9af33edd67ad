"""`composekit init` on real-world layouts: a uv workspace member, a Poetry project in a subdirectory, split
requirements, a src/ layout, an app factory (tests/fixtures/); the health route with its router prefixes composed;
the migration from a prestart script or an alembic.ini anywhere in the member; app/workdir in config and render."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from composekit.config import parse_config
from composekit.config.project import load_project
from composekit.config.sources import detect_sources, uv_workspace_members
from composekit.errors import ConfigError
from composekit.render.dockerfile import dockerignore_excludes
from composekit.render.stack import render_stack
from composekit.scaffold import find_health_path, plan_init, write_plan
from composekit.scaffold.detect import find_apps, find_migration
from composekit.scaffold.python_version import image_for
from composekit.scaffold.routes import find_health_routes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# fixture -> (lock file to plant, app/path, app/workdir, module, health_path, migrate/command)
LAYOUTS = {
    "uv-workspace": (
        "uv.lock",
        None,
        "backend",
        "app.main:app",
        "/api/v1/utils/health-check/",
        "bash scripts/prestart.sh",
    ),
    "poetry-subdir": ("service/poetry.lock", "service", None, "app.main:app", "/api/status/healthz", None),
    "split-requirements": (None, None, None, "api.main:app", "/ping", "bash prestart.sh"),
    "src-layout": ("uv.lock", None, None, "shop.main:app", "/_/live", "alembic upgrade head"),
    "app-factory": (None, None, None, "app.factory:create_app()", "/status/ready", None),
}


def sample(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    lock = LAYOUTS[name][0]
    if lock:
        (target / lock).write_text("# placeholder lock file (detection reads its name only)\n")
    return target


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def init(root: Path, **kwargs: object) -> tuple[dict[str, str], dict[str, object], list[str], list[str]]:
    plan = plan_init(root, password=lambda: "s3cret-for-tests", **kwargs)  # type: ignore[arg-type]
    write_plan(plan)
    files = {f.path: f.content.decode() for f in plan.files}
    return files, yaml.safe_load(files["composekit.yaml"]), plan.notes, plan.guidance


def final_stage(dockerfile: str) -> str:
    return dockerfile.rsplit("\nFROM ", 1)[1]


# each layout, end to end through init -------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(LAYOUTS))
def test_init_places_each_layout(tmp_path: Path, fixture: str) -> None:
    _lock, path, workdir, module, health, migrate = LAYOUTS[fixture]
    files, config, notes, guidance = init(sample(tmp_path, fixture))
    app = config["app"]
    assert isinstance(app, dict)
    assert (app.get("path"), app.get("workdir"), app["module"], app["health_path"]) == (path, workdir, module, health)
    assert config.get("migrate") == ({"command": migrate} if migrate else None)
    assert f"module {module}: found the FastAPI app" in notes[0]
    assert any(n.startswith(f"health route GET {health}: found in ") for n in notes)
    assert not any("add a health endpoint" in g for g in guidance)
    prefix = f"{path}/" if path else ""
    assert f"{prefix}Dockerfile" in files and f"{prefix}.dockerignore" in files


def test_workspace_member_dockerfile_installs_the_lock_before_the_member_code(tmp_path: Path) -> None:
    root = sample(tmp_path, "uv-workspace")
    files, _config, notes, _guidance = init(root, template="fastapi-postgres")
    dockerfile = files["Dockerfile"]
    sync = dockerfile.index("uv sync --frozen --no-dev --no-install-workspace --package app --python python3")
    assert (
        dockerfile.index("COPY pyproject.toml uv.lock /src/") < dockerfile.index("COPY backend/pyproject.toml") < sync
    )
    final = final_stage(dockerfile)
    # Only the member, after the dependencies: the frontend and a code-only change never touch the venv layer.
    assert "COPY backend /app/backend" in final and "COPY . " not in final
    assert (
        final.index("COPY --from=build /opt/venv") < final.index("WORKDIR /app/backend") < final.index("COPY backend")
    )
    assert "PYTHONPATH=/app/backend" in final and final.index("USER app") > final.index("COPY backend")
    assert (
        "app/workdir backend: the app's member, where it runs and its imports start (the lock file is in the root)"
        in notes
    )
    assert "scripts/prestart.sh found (the prestart convention): migrate/command runs it" in notes
    # The secrets directory is in the build context (the root): the generated .dockerignore keeps it out.
    assert dockerignore_excludes(files[".dockerignore"], "secrets/db_password")


def test_workspace_members_are_read_from_the_globs(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "pyproject.toml": '[tool.uv.workspace]\nmembers = ["backend", "libs/*"]\nexclude = ["libs/old"]\n',
            "backend/pyproject.toml": '[project]\nname = "api"\n',
            "libs/a/pyproject.toml": '[project]\nname = "a"\n',
            "libs/old/pyproject.toml": '[project]\nname = "old"\n',
            "libs/notes/README.md": "no project here\n",
            "uv.lock": "",
        },
    )
    assert uv_workspace_members(root) == ["backend", "libs/a"]
    sources = detect_sources(root, "backend", "app.main:app")
    assert sources is not None
    assert (sources.package, sources.workspace_members, sources.pythonpath) == ("api", ("backend", "libs/a"), "backend")


def test_poetry_in_a_subdirectory_builds_from_that_subdirectory(tmp_path: Path) -> None:
    root = sample(tmp_path, "poetry-subdir")
    files, _config, notes, _guidance = init(root)
    assert "app/path service: the project that declares the dependencies (the build context)" in notes
    assert files["service/Dockerfile"].startswith("# Generated by composekit (poetry).")
    assert "COPY . /app" in final_stage(files["service/Dockerfile"])
    assert not (root / "Dockerfile").exists()
    project = load_project((root / "composekit.yaml",))
    assert project.app_dir == (root / "service").resolve() and project.dockerfile == project.app_dir / "Dockerfile"


def test_split_requirements_copy_the_directory_and_install_the_production_file(tmp_path: Path) -> None:
    files, _config, notes, _guidance = init(sample(tmp_path, "split-requirements"))
    dockerfile = files["Dockerfile"]
    assert dockerfile.index("COPY requirements/ /tmp/requirements/") < dockerfile.index(
        "pip install -r /tmp/requirements/prod.txt gunicorn uvicorn-worker"
    )
    assert dockerfile.index("pip install -r") < dockerfile.index("COPY . /app")
    assert "dependencies: pip (requirements/prod.txt) -> Dockerfile" in notes


@pytest.mark.parametrize(
    ("names", "chosen"),
    [(["dev.txt", "base.txt"], "base.txt"), (["base.txt", "production.txt"], "production.txt"), (["dev.txt"], None)],
)
def test_split_requirements_file_choice(tmp_path: Path, names: list[str], chosen: str | None) -> None:
    write(tmp_path, {f"requirements/{n}": "fastapi\n" for n in names})
    sources = detect_sources(tmp_path)
    assert (sources.requirements if sources else None) == (f"requirements/{chosen}" if chosen else None)


def test_src_layout_puts_src_on_the_pythonpath(tmp_path: Path) -> None:
    files, _config, notes, _guidance = init(sample(tmp_path, "src-layout"))
    final = final_stage(files["Dockerfile"])
    assert "PYTHONPATH=/app/src" in final and "WORKDIR /app\n" in final and "COPY . /app" in final
    assert "imports start in src (a src/ layout): the image puts it on PYTHONPATH" in notes


def test_src_layout_with_your_own_dockerfile_says_the_dockerfile_must_place_it(tmp_path: Path) -> None:
    root = sample(tmp_path, "src-layout")
    (root / "Dockerfile").write_text("FROM python:3.13-slim\n")
    files, _config, notes, _guidance = init(root)
    assert "Dockerfile" not in files
    where = [n for n in notes if n.startswith("imports start in src (a src/ layout): ")]
    assert where == [
        "imports start in src (a src/ layout): your Dockerfile must make it the WORKDIR or put it on PYTHONPATH "
        "(`up` checks the image)"
    ]


def test_app_factory_is_served_by_calling_it(tmp_path: Path) -> None:
    _files, _config, notes, _guidance = init(sample(tmp_path, "app-factory"))
    assert notes[0] == "module app.factory:create_app(): found the FastAPI app factory in app/factory.py"


def test_a_module_level_app_wins_over_the_factory_it_calls(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "fastapi\n",
            "app/__init__.py": "",
            "app/factory.py": "from fastapi import FastAPI\n\ndef make():\n    api = FastAPI()\n    return api\n",
            "app/main.py": "from app.factory import make\n\napp = make()\n",
        },
    )
    assert [(a.module, a.file) for a in find_apps(tmp_path)] == [("app.main:app", "app/main.py")]


def test_imports_decide_the_module_and_the_working_directory(tmp_path: Path) -> None:
    # requirements.txt at the root, the code in backend/ importing `app.*`: run from backend/.
    write(
        tmp_path,
        {
            "requirements.txt": "fastapi\n",
            "backend/app/__init__.py": "",
            "backend/app/core.py": "NAME = 'x'\n",
            "backend/app/main.py": "from fastapi import FastAPI\nfrom app.core import NAME\napp = FastAPI()\n",
        },
    )
    [found] = find_apps(tmp_path)
    assert (found.module, found.path, found.workdir, found.imports) == ("app.main:app", ".", "backend", "backend")


# the health route ---------------------------------------------------------------------------------


SETTINGS_APP = {
    "app/__init__.py": "",
    "app/core/__init__.py": "",
    "app/core/config.py": (
        "from pydantic_settings import BaseSettings\n"
        "class Settings(BaseSettings):\n"
        '    API_V1_STR: str = "/api/v1"\n'
        "settings = Settings()\n"
    ),
    "app/api/__init__.py": "",
    "app/api/routes/__init__.py": "",
    "app/api/routes/utils.py": (
        "from fastapi import APIRouter\n"
        'router = APIRouter(prefix="/utils")\n'
        '@router.get("/health-check/")\n'
        "def health_check() -> bool:\n"
        "    return True\n"
    ),
    "app/api/main.py": (
        "from fastapi import APIRouter\n"
        "from app.api.routes import utils\n"
        "api_router = APIRouter()\n"
        "api_router.include_router(utils.router)\n"
    ),
    "app/main.py": (
        "from fastapi import FastAPI\n"
        "from app.api.main import api_router\n"
        "from app.core.config import settings\n"
        "app = FastAPI()\n"
        "app.include_router(api_router, prefix=settings.API_V1_STR)\n"
    ),
}


def test_health_prefixes_compose_through_routers_and_a_settings_default(tmp_path: Path) -> None:
    assert find_health_path(write(tmp_path, SETTINGS_APP)) == "/api/v1/utils/health-check/"


@pytest.mark.parametrize(
    ("prefix_source", "expected"),
    [
        ('PREFIX = "/v2"\n', "/v2/utils/health-check/"),
        ('BASE = "/v"\nPREFIX = BASE + "2"\n', "/v2/utils/health-check/"),
        ('BASE = "/v"\nPREFIX = f"{BASE}3"\n', "/v3/utils/health-check/"),
    ],
)
def test_module_constants_fstrings_and_concatenation_resolve(tmp_path: Path, prefix_source: str, expected: str) -> None:
    files = dict(SETTINGS_APP)
    files["app/consts.py"] = prefix_source
    files["app/main.py"] = (
        "from fastapi import FastAPI\n"
        "from app.api.main import api_router\n"
        "from app import consts\n"
        "app = FastAPI()\n"
        "app.include_router(api_router, prefix=consts.PREFIX)\n"
    )
    assert find_health_path(write(tmp_path, files)) == expected


def test_an_unresolvable_prefix_is_reported_not_guessed(tmp_path: Path) -> None:
    files = dict(SETTINGS_APP)
    files["app/main.py"] = (
        "import os\n"
        "from fastapi import FastAPI\n"
        "from app.api.main import api_router\n"
        "app = FastAPI()\n"
        'app.include_router(api_router, prefix=os.environ["PREFIX"])\n'
    )
    files["requirements.txt"] = "fastapi\n"
    root = write(tmp_path, files)
    assert find_health_path(root) is None
    _files, config, notes, guidance = init(root)
    assert config["app"]["health_path"] == "/health"  # type: ignore[index]
    assert (
        "health route '/utils/health-check/' found, but its prefix `os.environ['PREFIX']` (app/main.py line 5) "
        "cannot be read statically"
    ) in notes
    assert (
        "set app/health_path in composekit.yaml to the full path of your health route '/utils/health-check/': its "
        "prefix `os.environ['PREFIX']` (app/main.py line 5) is not a constant composekit can read"
    ) in guidance
    assert not any("add a health endpoint" in g for g in guidance)


def test_a_missing_health_route_is_said_and_one_proposed(tmp_path: Path) -> None:
    root = write(
        tmp_path, {"requirements.txt": "fastapi\n", "app/main.py": "app = FastAPI()\n@app.get('/')\ndef i(): ...\n"}
    )
    _files, _config, notes, guidance = init(root)
    assert "no health route found (a GET route whose path names health, healthz, ready, live or ping)" in notes
    assert any(g.startswith("add a health endpoint") and '@app.get("/health")' in g for g in guidance)


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ('@app.get("/status/ping")\n@app.get("/readyz")\n', "/readyz"),  # readiness before ping
        ('@app.get("/live")\n@app.get("/healthz")\n', "/healthz"),
        ('@app.post("/health")\n@app.get("/pingpong")\n', None),  # POST and a word that only starts with ping
        ('@app.api_route("/health", methods=["POST"])\n', None),
        ('@app.api_route("/health", methods=["GET", "HEAD"])\n', "/health"),
    ],
)
def test_health_route_words_methods_and_preference(tmp_path: Path, routes: str, expected: str | None) -> None:
    write(tmp_path, {"main.py": f"from fastapi import FastAPI\napp = FastAPI()\n{routes}def f(): ...\n"})
    assert find_health_path(tmp_path) == expected


def test_a_router_nobody_includes_still_counts_with_its_own_prefix(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"probe.py": 'from fastapi import APIRouter\nr = APIRouter(prefix="/sys")\n@r.get("/health")\ndef h(): ...\n'},
    )
    assert find_health_path(tmp_path) == "/sys/health"


# the migration ------------------------------------------------------------------------------------


def test_migration_prestart_first_then_alembic_anywhere_in_the_member(tmp_path: Path) -> None:
    write(tmp_path, {"db/alembic.ini": "[alembic]\n", "src/x.py": ""})
    assert find_migration(tmp_path).command == "alembic -c db/alembic.ini upgrade head"
    write(tmp_path, {"alembic.ini": "[alembic]\n"})
    assert find_migration(tmp_path).command == "alembic upgrade head"
    write(tmp_path, {"prestart.sh": "alembic upgrade head\n"})
    assert find_migration(tmp_path).command == "bash prestart.sh"
    write(tmp_path, {"scripts/prestart.sh": "alembic upgrade head\n"})
    assert find_migration(tmp_path).command == "bash scripts/prestart.sh"
    assert find_migration(tmp_path / "src").command is None


@pytest.mark.parametrize(
    ("location", "command"),
    [
        # Alembic reads a relative script_location from the directory it runs in: it has to run in src/.
        ("migrations", "sh -c 'cd src && alembic upgrade head'"),
        ("%(here)s/migrations", "alembic -c src/alembic.ini upgrade head"),  # relative to the ini: runs anywhere
        ("src/migrations", "alembic -c src/alembic.ini upgrade head"),  # already relative to the member
        ("myapp:migrations", "alembic -c src/alembic.ini upgrade head"),  # a package resource
    ],
)
def test_an_alembic_ini_in_a_subdirectory_runs_where_its_script_location_resolves(
    tmp_path: Path, location: str, command: str
) -> None:
    write(tmp_path, {"src/alembic.ini": f"[alembic]\nscript_location = {location}\n", "src/migrations/env.py": ""})
    found = find_migration(tmp_path)
    assert found.command == command
    assert command in found.note
    if command.startswith("sh"):
        assert "relative to the directory Alembic runs in" in found.note


# app/workdir: config and render, both modes --------------------------------------------------------


@pytest.mark.parametrize("value", ["..", "a/../b", "/abs", "a/", "./a", ""])
def test_workdir_must_be_a_directory_inside_the_context(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"name": "x", "domain": "x.example.com", "app": {"module": "a:b", "workdir": value}})
    assert info.value.problems == [
        f'composekit.yaml: app/workdir: expected a relative directory inside app/path such as "backend" (no "..", '
        f'no trailing "/"), got "{value}"'
    ]


def test_a_missing_workdir_names_the_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "fastapi\n",
            "composekit.yaml": ("name: x\ndomain: x.example.com\napp:\n  module: app.main:app\n  workdir: backend\n"),
        },
    )
    with pytest.raises(ConfigError) as info:
        load_project((tmp_path / "composekit.yaml",))
    assert info.value.problems == [
        f"composekit.yaml: app/workdir: directory 'backend' does not exist in {tmp_path}; it is the directory of "
        "app/path where the app's code runs (default: app/path itself)"
    ]


@pytest.mark.parametrize("mode", ["compose", "swarm"])
@pytest.mark.parametrize("fixture", sorted(LAYOUTS))
def test_render_generates_the_dockerfile_init_wrote_in_both_modes(tmp_path: Path, fixture: str, mode: str) -> None:
    root = sample(tmp_path, fixture)
    files, _config, _notes, _guidance = init(root)
    path = LAYOUTS[fixture][1]
    prefix = f"{path}/" if path else ""
    (root / f"{prefix}Dockerfile").unlink()
    if mode == "swarm":
        with (root / "composekit.yaml").open("a") as f:
            f.write("mode: swarm\n")
    project = load_project((root / "composekit.yaml",))
    rendered = render_stack(project).files
    assert rendered["Dockerfile"] == files[f"{prefix}Dockerfile"]
    document = (
        yaml.safe_load(rendered["stack.yml" if mode == "swarm" else "compose.yaml"]) if mode == "compose" else None
    )
    if document is not None:
        build = document["services"]["app"]["build"]
        assert (project.out_dir / build["context"]).resolve() == project.app_dir


# PEP 621 projects without a lock (hatch, PDM) ------------------------------------------------------


HATCH = {
    "README.md": "a repository whose app is a hatch project in svc/\n",
    "svc/pyproject.toml": (
        '[project]\nname = "hs"\nversion = "0.1.0"\ndependencies = ["fastapi>=0.115"]\n\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    ),
    "svc/src/hs/__init__.py": "",
    "svc/src/hs/main.py": 'from fastapi import FastAPI\napp = FastAPI()\n@app.get("/health")\ndef h(): ...\n',
}


def test_hatch_project_in_a_subdirectory_installs_its_declared_dependencies(tmp_path: Path) -> None:
    root = write(tmp_path, HATCH)
    files, config, notes, _guidance = init(root)
    assert config["app"] == {"path": "svc", "module": "hs.main:app", "health_path": "/health", "workers": "auto"}
    dockerfile = files["svc/Dockerfile"]
    assert dockerfile.startswith("# Generated by composekit (pyproject).")
    assert dockerfile.index("COPY pyproject.toml /tmp/pyproject.toml") < dockerfile.index("import tomllib")
    assert dockerfile.index("pip install -r /tmp/requirements.txt") < dockerfile.index("COPY . /app")
    assert "PYTHONPATH=/app/src" in final_stage(dockerfile)
    assert (
        "dependencies: pyproject (pyproject.toml [project].dependencies, not locked: versions resolved at build "
        "time) -> svc/Dockerfile"
    ) in notes


def test_a_pdm_lock_is_not_read_and_init_says_how_to_pin(tmp_path: Path) -> None:
    root = write(tmp_path, {**HATCH, "svc/pdm.lock": "# placeholder\n"})
    _files, _config, notes, _guidance = init(root)
    assert any(
        n.endswith(
            "; pdm.lock is not read: `pdm export --prod -o requirements.txt` pins the versions it holds -> "
            "svc/Dockerfile"
        )
        for n in notes
    )


def test_a_lock_at_the_workspace_root_wins_over_the_members_own_pyproject(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            **{k.replace("svc/", "backend/"): v for k, v in HATCH.items()},
            "pyproject.toml": '[tool.uv.workspace]\nmembers = ["backend"]\n',
            "uv.lock": "",
        },
    )
    [found] = find_apps(root)
    assert (found.path, found.workdir, found.imports, found.module) == (".", "backend", "backend/src", "hs.main:app")
    files, _config, _notes, _guidance = init(root)
    assert "--no-install-workspace --package hs" in files["Dockerfile"]
    assert "PYTHONPATH=/app/backend/src" in files["Dockerfile"] and "COPY backend /app/backend" in files["Dockerfile"]


# the Python image and requires-python ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("requires", "image"),
    [
        (">=3.14,<4.0", "python:3.14-slim"),  # FastAPI's full-stack template in 2026
        (">=3.11", None),
        (">3.13", None),  # the image runs the newest 3.13.x
        (">=3.13.2", None),
        (">=3.14.1", "python:3.14-slim"),
        (">=3.10,<3.13", "python:3.12-slim"),
        ("==3.12.*", "python:3.12-slim"),
        ("~=3.12.1", "python:3.12-slim"),
        ("~=3.12", None),
        ("!=3.13.*", "python:3.14-slim"),
        ("<3.13", "python:3.12-slim"),
        (">=3.14 || whatever", None),  # not read: the default stays, nothing guessed
    ],
)
def test_python_image_for_requires_python(requires: str, image: str | None) -> None:
    assert image_for(requires, "python:3.13-slim") == image


def test_init_picks_a_python_image_the_member_requires(tmp_path: Path) -> None:
    root = sample(tmp_path, "uv-workspace")
    pyproject = root / "backend" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.14"'))
    files, config, notes, _guidance = init(root)
    assert config["images"] == {"python": "python:3.14-slim"}
    assert files["Dockerfile"].splitlines()[2] == "ARG PYTHON_IMAGE=python:3.14-slim"
    assert (
        "requires-python '>=3.14' (backend/pyproject.toml): python:3.13-slim does not satisfy it: images/python "
        "python:3.14-slim"
    ) in notes
    assert "images" not in init(sample(tmp_path / "b", "uv-workspace"))[1]


def test_secrets_outside_the_member_need_no_dockerignore_line_while_the_dockerfile_is_composekits(
    tmp_path: Path,
) -> None:
    root = sample(tmp_path, "uv-workspace")
    (root / ".dockerignore").write_text("frontend/node_modules\n")  # the repository's own, listing no secret
    _files, _config, notes, _guidance = init(root, template="fastapi-postgres")
    assert "kept your .dockerignore" in notes  # no reminder: the image gets backend/ only
    assert "compose.yaml" in render_stack(load_project((root / "composekit.yaml",))).files
    # Edited to copy the whole context, the Dockerfile would put secrets/ in the image: refused, as for any own one.
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY backend /app/backend", "COPY . /app"))
    with pytest.raises(ConfigError) as info:
        render_stack(load_project((root / "composekit.yaml",)))
    assert info.value.problems == [
        f'composekit.yaml: database/password_file: "secrets/db_password" is in the build context of your Dockerfile '
        f"and {root / '.dockerignore'} does not exclude it, so the image would contain it; add the line "
        f'"secrets/db_password" to {root / ".dockerignore"}'
    ]


def test_an_unreadable_router_prefix_is_reported_with_the_prefixes_above_it_composed(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.py": (
                "from fastapi import FastAPI\nfrom ops import router\napp = FastAPI()\n"
                'app.include_router(router, prefix="/api")\n'
            ),
            "ops.py": (
                "import os\nfrom fastapi import APIRouter\n"
                'router = APIRouter(prefix=os.getenv("OPS", "/ops"))\n@router.get("/healthz")\ndef h(): ...\n'
            ),
        },
    )
    scan = find_health_routes(tmp_path, set())
    assert scan.found == []
    assert [(u.above, u.expression, u.route, u.file, u.line) for u in scan.unresolved] == [
        ("/api", "os.getenv('OPS', '/ops')", "/healthz", "ops.py", 3)
    ]
