"""What composekit runs in the app's image, checked in the image itself right after the build and before anything of
the stack changes: `gunicorn` on its PATH with a uvicorn worker class, the app's top-level package importable from
its working directory, and the programs and repository files the migration, the processes and the schedules name.

An image built from the app's own Dockerfile decides all of that; without this check, a Dockerfile that never
installed gunicorn failed half-way through `up` (Traefik started, volumes created) with the engine's "exec:
gunicorn: executable file not found". Pure: ``expectations`` reads the config and the repository, ``PROBE`` runs in
a throwaway container of the image (python3, standard library only), ``problems`` reads what it printed.
"""

from __future__ import annotations

import json
import os.path
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..config.companions import command_argv
from ..config.model import Config
from ..config.project import Project
from ..engine.docker import Docker
from ..engine.wait import Progress
from ..errors import ImageError
from ..render.migration_state import shell_script, shell_segments
from ..render.names import app_image

__all__ = [
    "PROBE",
    "WORKER_MODULES",
    "Expectations",
    "Finding",
    "check_image",
    "expectations",
    "probe_args",
    "problems",
]

# The worker classes gunicorn_conf.py picks from, in its order: uvicorn-worker's, else uvicorn's own (deprecated
# since uvicorn 0.30, still shipped): an image that installs gunicorn and uvicorn only runs on the second.
WORKER_MODULES = ("uvicorn_worker", "uvicorn.workers")

# Runs as `python3 -c PROBE WANT` in the image as its own user, in its working directory, with its environment: the
# sys.path gunicorn gets there (the working directory first, then PYTHONPATH). find_spec of a top-level name
# imports nothing; of "uvicorn.workers" it imports uvicorn, as gunicorn's worker would.
PROBE = """\
import importlib.util, json, os, shutil, sys
want = json.loads(sys.argv[1])
def found(name):
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False
programs = {p: shutil.which(p) for p in want["programs"]}
venvs = [os.path.join(os.getcwd(), ".venv", "bin"), "/app/.venv/bin", "/venv/bin", "/opt/venv/bin", "/.venv/bin"]
print(json.dumps({
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "path": os.environ.get("PATH", ""),
    "programs": programs,
    "elsewhere": {p: d for p in programs if not programs[p] for d in reversed(venvs) if shutil.which(p, path=d)},
    "paths": {p: os.path.exists(p) for p in want["paths"]},
    "modules": {m: found(m) for m in want["modules"]},
}))
"""


@dataclass(frozen=True)
class Expectations:
    """What the image must have, each with the reason composekit needs it (said in the error)."""

    programs: dict[str, str] = field(default_factory=dict)  # program -> who runs it
    paths: dict[str, str] = field(default_factory=dict)  # relative to the image's working directory -> who names it
    modules: dict[str, str] = field(default_factory=dict)  # top-level package -> who imports it
    worker: bool = True  # gunicorn runs the app: one of WORKER_MODULES


@dataclass(frozen=True)
class Finding:
    problem: str
    fix: str


def _relative(word: str) -> bool:
    """A path inside the directory it is relative to (no option, not absolute, no ..)."""
    return bool(word) and not word.startswith("-") and not os.path.isabs(word) and ".." not in PurePosixPath(word).parts


def _in_repo(member: Path, word: str) -> bool:
    """A relative path (a word with a slash or a dot-extension) that exists in the app's directory of the repository:
    the image is expected to hold it at the same place under its working directory."""
    if not _relative(word) or ("/" not in word and "." not in word.strip(".")):
        return False
    return _exists(member / word)


def _exists(path: Path, directory: bool = False) -> bool:
    try:  # a long inline script is no file name (ENAMETOOLONG)
        return path.is_dir() if directory else path.exists()
    except OSError:
        return False


def _add_command(want: Expectations, member: Path, argv: list[str], who: str) -> None:
    """A command's program and the repository files it names. Of a `sh -c` script only the shell and the directories
    its leading `cd`s enter (`cd src && alembic upgrade head`, as init writes it): the rest of a script (keywords,
    functions, conditions, quoted programs of other languages) is not read, so nothing in it is refused wrongly."""
    if not argv:
        return
    script = shell_script(argv)
    if script is not None:
        want.programs.setdefault(argv[0], who)
        here = PurePosixPath()
        for words in shell_segments(script):
            if words[0] != "cd" or len(words) != 2 or not _relative(words[1]):
                break
            if not _exists(member / here / words[1], directory=True):
                break
            here = here / words[1]
            want.paths.setdefault(here.as_posix(), who)
        return
    program, rest = argv[0], argv[1:]
    if "/" in program:  # a file of the repository (./manage.py, scripts/run.sh), or of the image
        rest = [program, *rest]
    else:
        want.programs.setdefault(program, who)
    for word in rest:
        if _in_repo(member, word):
            want.paths.setdefault(word, who)


def expectations(config: Config, member: Path, server: str = "gunicorn") -> Expectations:
    """What ``config`` runs in the app's image; ``member`` is the repository directory the image's working directory
    stands for (app/path, then app/workdir); ``server`` what runs the app: gunicorn (compose mode, or swarm with
    app/workers) or uvicorn (swarm mode's one process per task)."""
    want = Expectations(worker=server == "gunicorn")
    top = config.app.module.split(":", 1)[0].split(".", 1)[0]
    if server == "gunicorn":
        want.programs["gunicorn"] = f"composekit runs the app with `gunicorn --config ... {config.app.module}`"
    else:
        want.modules["uvicorn"] = f"composekit runs the app with uvicorn ({config.app.module})"
    want.modules[top] = f"app/module {config.app.module}"
    if config.migrate.command is not None:
        _add_command(want, member, command_argv(config.migrate.command), "migrate/command")
    for name, process in sorted(config.processes.items()):
        _add_command(want, member, command_argv(process.command), f"processes/{name}")
    for name, schedule in sorted(config.schedules.items()):
        _add_command(want, member, command_argv(schedule.command), f"schedules/{name}")
    return want


def probe_args(want: Expectations) -> list[str]:
    """The one argument PROBE reads: what to look for."""
    modules = [*want.modules, *(WORKER_MODULES if want.worker else ())]
    return [json.dumps({"programs": sorted(want.programs), "paths": sorted(want.paths), "modules": modules})]


def problems(want: Expectations, printed: str, own_dockerfile: bool) -> tuple[list[Finding], bool]:
    """What the image lacks, each with its fix, and whether it runs as root; from PROBE's output (its last line)."""
    seen = json.loads(printed.strip().splitlines()[-1])
    cwd, where = seen["cwd"], "your Dockerfile" if own_dockerfile else "the Dockerfile"
    out: list[Finding] = []
    for program, who in sorted(want.programs.items()):
        if seen["programs"].get(program):
            continue
        venv = seen.get("elsewhere", {}).get(program)
        if venv:  # installed in a venv the image does not put on its PATH (Poetry's or uv's .venv in the project)
            fix = f"put {venv} on the image's PATH (`ENV PATH={venv}:$PATH` in {where}): `{program}` is there"
        elif program == "gunicorn":
            fix = f"install gunicorn and uvicorn-worker in the image (add them to the dependencies {where} installs)"
        else:
            fix = f"install it in the image (add its package to the dependencies {where} installs), or change {who}"
        out.append(Finding(f"{who}: `{program}` is not on the image's PATH ({seen['path']})", fix))
    if want.worker and not any(seen["modules"].get(m) for m in WORKER_MODULES):
        out.append(
            Finding(
                "gunicorn runs uvicorn workers (uvicorn-worker's uvicorn_worker.UvicornWorker, or uvicorn's own "
                "uvicorn.workers.UvicornWorker, deprecated since uvicorn 0.30), and the image's Python finds neither",
                f"add uvicorn-worker to the dependencies {where} installs",
            )
        )
    for module, who in want.modules.items():
        if not seen["modules"].get(module):
            out.append(
                Finding(
                    f"{who}: Python finds no `{module}` from the image's working directory {cwd} (nor its PYTHONPATH)",
                    f"copy the code so that {cwd}/{module} exists ({where}'s WORKDIR and COPY), or set "
                    "`ENV PYTHONPATH=` to the directory that holds it"
                    if module != "uvicorn"
                    else f"add uvicorn to the dependencies {where} installs",
                )
            )
    for path, who in sorted(want.paths.items()):
        if not seen["paths"].get(path):
            out.append(
                Finding(
                    f"{who} names {path}, which is in the repository but not in the image (its working directory "
                    f"{cwd} has no {path})",
                    f"copy it into the image at {cwd}/{path} ({where}'s COPY), or change {who}",
                )
            )
    return out, seen["uid"] == 0


def check_image(
    project: Project, docker: Docker, report: Progress, image: str | None = None, server: str = "gunicorn"
) -> None:
    """Right after the build, before anything of the stack changes: the app image has what composekit runs in it
    (this module's expectations), else an ImageError naming each thing missing and its fix. An image that runs as
    root is reported, not refused."""
    config = project.config
    image = image or app_image(config)
    member = project.app_dir / config.app.workdir
    want = expectations(config, member, server)
    printed = docker.probe_image(image, PROBE, probe_args(want), dict(config.app.environment))
    dockerfile = project.dockerfile
    found, root = problems(want, printed, own_dockerfile=dockerfile is not None)
    built = "built from " + (
        Path(os.path.relpath(dockerfile, project.root)).as_posix() if dockerfile else "the generated Dockerfile"
    )
    if found:
        lines = [f"the app image {image} ({built}) lacks what composekit runs in it:"]
        for f in found:
            lines += [f"  - {f.problem}", f"    fix: {f.fix}"]
        lines.append("Nothing of the stack was started or changed; build again with `composekit up` once fixed.")
        raise ImageError("\n".join(lines))
    entrypoint = docker.image_entrypoint(image)
    if entrypoint:
        report(
            f"warning: the app image {image} ({built}) has ENTRYPOINT {json.dumps(entrypoint)}: composekit's "
            "commands (gunicorn, the migration, the processes) reach it as its arguments, so it must end with "
            '`exec "$@"` to run them'
        )
    if root:
        report(
            f"warning: the app image {image} ({built}) runs as root; add a user to the Dockerfile "
            "(`RUN useradd --create-home app` then `USER app`), as composekit's generated one does"
        )
