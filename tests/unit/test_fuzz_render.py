"""Hostile strings in every string key of composekit.yaml: each config is either refused with key-path errors
(ConfigError) or renders, in compose and swarm mode, files that Compose, Python and sh parse, in which every
value is still exactly what the config said (one literal, one argument) and nothing else.

The string keys come from the JSON Schema (config/schema.py, derived from the model), so a new key is fuzzed
without a change here. A seeded generator instead of hypothesis: the shell scripts of all configs are checked
by one `sh -n` at the end rather than one process per config (test_fuzz_config.py fuzzes bad values through
the CLI).
"""

from __future__ import annotations

import json
import random
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config.model import Config
from composekit.config.project import Project, load_project
from composekit.config.schema import config_schema
from composekit.errors import ConfigError
from composekit.render.dockerfile import GUNICORN_CONF_PATH
from composekit.render.names import app_image
from composekit.render.stack import render_stack
from composekit.render.traefik import host_rule, routes_file

from .probe_code import probe_url
from .shell_words import sh_commands
from .test_compose_schema import validator

CONFIGS = 500
PARTS = 5
SEED = 20261203

# The key of a mapping entry (app/environment, app/volumes, swarm/nodes) whose value is fuzzed; KEY_SLOT in a
# path: the entry's key itself is the hostile string.
MAP_KEY = "k1"
KEY_SLOT = "<key>"
MARKER = "touch /tmp/PWNED"
FRAGMENTS = [
    "'",
    '"',
    "`",
    "$",
    "$HOME",
    "${IFS}",
    "$(id)",
    ";",
    "&&",
    "|",
    "\n",
    "\r\n",
    "\t",
    "\\",
    "\\'",
    "Ж",
    "\u202e",
    "\ufeff",
    "-",
    "--",
    "-oProxyCommand=x",
    "#",
    "{{",
    "}}",
    "%",
    ":",
    ",",
    "=",
    "*",
    "?",
    "..",
    "/",
    " ",
    "~",
    "@",
    "!",
    "<>",
    "x" * 5000,
    MARKER,
    f"';{MARKER};'",
    f'";{MARKER};"',
    f"`{MARKER}`",
    f"$({MARKER})",
    f"\n{MARKER}\n",
    f"'); import os; os.system('{MARKER}'); ('",
]

# A config that sets every key, so that every string slot has a place (and a sample value to mangle).
BASE: dict[str, Any] = {
    "name": "fz",
    "domain": "fz.example.com",
    "acme": {"email": "ops@example.com", "ca_server": "staging", "ca_certificates": ["ca.pem"], "challenge": "http"},
    "app": {
        "path": ".",
        "module": "app.main:app",
        "health_path": "/health",
        "env_file": "app.env",
        "environment": {MAP_KEY: "value"},
        "volumes": {MAP_KEY: "/data"},
    },
    "migrate": {"command": "alembic upgrade head", "state_command": ["alembic", "current"]},
    "database": {"name": "app", "user": "app", "password_file": "secrets/db_password"},
    "images": {"python": "python:3.13-slim", "traefik": "traefik:v3.7", "postgres": "postgres:17"},
    "smoke": {
        "checks": [{"path": "/health", "contains": "ok", "json_key": "status"}],
        "resolve": "203.0.113.7",
        "ca_file": "ca.pem",
    },
    "logging": {"driver": "json-file", "max_size": "10m"},
    "network": {"subnet": "10.213.7.0/24"},
    "host": "unix:///var/run/docker.sock",
    "mode": "compose",
}
SWARM: dict[str, Any] = {
    "mode": "swarm",
    "swarm": {"nodes": {MAP_KEY: "unix:///var/run/docker.sock"}},
    "registry": "registry.example.com/team",
    "app": {"placement": ["node.role == manager"], "workers": 2},
}
SWARM_ONLY = {("swarm",), ("registry",), ("app", "placement")}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return _resolve(schema, schema["$defs"][ref.split("/")[-1]]) if isinstance(ref, str) else node


def _takes_text(node: dict[str, Any]) -> bool:
    types = node.get("type")
    return (
        "string" in (types if isinstance(types, list) else [types])
        or any(isinstance(v, str) for v in node.get("enum", []))
        or isinstance(node.get("const"), str)
    )


def string_slots() -> list[tuple[str | int, ...]]:
    """Every place of composekit.yaml that takes a string (a mapping's keys included), from the JSON Schema."""
    schema = config_schema()
    found: list[tuple[str | int, ...]] = []

    def walk(node: dict[str, Any], path: tuple[str | int, ...]) -> None:
        node = _resolve(schema, node)
        if _takes_text(node) and path not in found:
            found.append(path)
        for alternative in node.get("anyOf", []):
            walk(alternative, path)
        for key, sub in node.get("properties", {}).items():
            walk(sub, (*path, key))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            found.append((*path, KEY_SLOT))
            walk(extra, (*path, MAP_KEY))
        if isinstance(node.get("items"), dict):
            walk(node["items"], (*path, 0))

    walk(schema, ())
    return found


def _merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in top.items()}}
    return top


def _get(doc: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: str) -> None:
    *parents, last = path
    node: Any = doc
    for part, after in zip(parents, path[1:], strict=False):
        if isinstance(node, list):
            while len(node) <= int(part):
                node.append({} if not isinstance(after, int) else [])
            node = node[int(part)]
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = [] if isinstance(after, int) else {}
            node = node[part]
    if last == KEY_SLOT:
        sample = node.pop(MAP_KEY, "x") if isinstance(node, dict) else "x"
        node[value] = sample
    elif isinstance(node, list):
        while len(node) <= int(last):
            node.append("x")
        node[int(last)] = value
    else:
        node[last] = value


# Half of the fragments come from these: what breaks a quoted literal in sh, Python, YAML or a Traefik rule.
QUOTING = ["'", '"', "`", "\\", "$", "${IFS}", ";", "\n", " "]


def _hostile(rng: random.Random, sample: Any) -> str:
    """A sample value with hostile fragments in it, or fragments alone."""
    count = rng.choice([1, 1, 2, 3])
    fragments = "".join(rng.choice(QUOTING if rng.random() < 0.5 else FRAGMENTS) for _ in range(count))
    text = sample if isinstance(sample, str) else "x"
    where = rng.choice(["alone", "prefix", "suffix", "suffix", "middle"])
    if where == "alone":
        return fragments
    if where == "prefix":
        return fragments + text
    if where == "suffix":
        return text + fragments
    cut = rng.randrange(len(text) + 1)
    return text[:cut] + fragments + text[cut:]


def generated_configs() -> Iterator[tuple[dict[str, Any], list[tuple[str | int, ...]]]]:
    rng = random.Random(SEED)
    slots = string_slots()
    # First every slot with each QUOTING character appended to its sample value, then random configs of one or
    # two slots in turn.
    systematic = [(slot, char) for slot in slots for char in QUOTING][:CONFIGS]
    for number in range(CONFIGS):
        if number < len(systematic):
            chosen = [systematic[number][0]]
        else:
            first = slots[number % len(slots)]
            chosen = [first] + ([rng.choice([s for s in slots if s != first])] if rng.random() < 0.3 else [])
        swarm = rng.random() < 0.4 or any(p[: len(s)] == s for p in chosen for s in SWARM_ONLY)
        doc: dict[str, Any] = json.loads(json.dumps(_merge(BASE, SWARM) if swarm else BASE))
        for path in chosen:
            sample = _get(doc, path)
            if number < len(systematic):
                _set(doc, path, (sample if isinstance(sample, str) else "x") + systematic[number][1])
            else:
                _set(doc, path, _hostile(rng, sample))
        yield doc, chosen


# What the rendered files must satisfy ---------------------------------------------------------------------

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the same documents, 10 times faster
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # for the configs this test writes, likewise


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # a safe loader, C or Python


def _unescape(value: Any) -> Any:
    """A loaded compose document as Compose hands it to the engine: "$$" is "$"."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _lone_dollars(value: Any, allowed: re.Pattern[str] | None = None) -> list[str]:
    if isinstance(value, str):
        text = allowed.sub("", value) if allowed else value
        return [value] if any(len(run) % 2 for run in re.findall(r"\$+", text)) else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _lone_dollars(v, allowed)]
    if isinstance(value, list):
        return [s for v in value for s in _lone_dollars(v, allowed)]
    return []


@cache
def _compiles(code: str) -> str | None:
    try:
        compile(code, "<rendered>", "exec")
    except SyntaxError as exc:
        return f"{exc.msg} at line {exc.lineno}"
    return None


def _python_code(argv: list[str]) -> str | None:
    """The code of `python3 [options] -c CODE ...`, else None."""
    if argv and argv[0].startswith("python") and "-c" in argv:
        return argv[argv.index("-c") + 1]
    return None


# The programs the generated Dockerfile's RUN lines run; anything else ran because a value escaped its quotes.
DOCKERFILE_PROGRAMS = {
    "python3",
    "groupadd",
    "useradd",
    "mkdir",
    "chown",
    "/opt/venv/bin/pip",
    "/opt/poetry/bin/pip",
    "/opt/poetry/bin/poetry",
    "/opt/uv/bin/pip",
    "/opt/uv/bin/uv",
}


class Checker:
    """Collects what is wrong with each rendered config, and the shell scripts to parse in one batch."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.scripts: dict[str, str] = {}  # script -> the config it came from
        self.where = ""

    def fail(self, what: str) -> None:
        self.problems.append(f"{self.where}: {what}")

    def check(self, project: Project, files: dict[str, str]) -> None:
        try:
            self._check(project, files)
        except Exception as exc:  # a file that does not parse is a finding, not a crash
            self.fail(f"{type(exc).__name__} while checking the files: {exc!s:.300}")

    def _check(self, project: Project, files: dict[str, str]) -> None:
        config = project.config
        if config.mode == "swarm":
            variables = re.compile(r"\$\{COMPOSEKIT_[A-Z_]+(:[-?][^}]*)?\}")
            for name in ("stack.yml", "migrate.yml"):
                if name in files:
                    self.compose_document(config, files[name], variables)
            for name, content in files.items():
                if name.endswith(".py") and (said := _compiles(content)):
                    self.fail(f"{name} does not compile: {said}")
                if name.startswith("swarm/") and name.endswith(".yml"):
                    _load(content)
            self.traefik_static(config, files["swarm/traefik.yml"])
        else:
            self.compose_document(config, files["compose.yaml"], None)
        if "Dockerfile" in files:
            self.dockerfile(config, files["Dockerfile"])
        routes = _load(routes_file(config, "g1", ["fz-app-1"], ["fz-app-2"]))
        if routes["http"]["routers"][config.name]["rule"] != host_rule(config.domain):
            self.fail(f"routes file rule {routes['http']['routers'][config.name]['rule']!r}")

    def compose_document(self, config: Config, text: str, variables: re.Pattern[str] | None) -> None:
        loaded = _load(text)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator().iter_errors(loaded)]
        if errors:
            self.fail(f"not valid by the Compose Specification: {errors}")
        if lone := _lone_dollars(loaded, variables):
            self.fail(f"strings Compose would interpolate: {lone!r:.300}")
        doc = _unescape(loaded)
        for name, service in doc["services"].items():
            test = service.get("healthcheck", {}).get("test")
            if isinstance(test, list) and test[:1] == ["CMD"]:
                code = _python_code(test[1:])
                if code is not None and (said := _compiles(code)):
                    self.fail(f"{name}'s healthcheck does not compile: {said}")
            elif isinstance(test, list) and test[:1] == ["CMD-SHELL"]:
                self.scripts.setdefault(test[1], self.where)
            command = service.get("command")
            if isinstance(command, list) and name != "migrate":
                code = _python_code(command)
                if code is not None and (said := _compiles(code)):
                    self.fail(f"{name}'s command does not compile: {said}")
            if isinstance(service.get("environment"), dict):
                for key, value in config.app.environment.items() if name in ("app", "migrate") else ():
                    if service["environment"].get(key) != value:
                        self.fail(f"{name}'s environment {key}={service['environment'].get(key)!r}, not {value!r}")
        app = doc["services"].get("app")
        if app is not None:
            url = probe_url(app["healthcheck"]["test"][-1])
            if url != f"http://127.0.0.1:{config.app.port}{config.app.health_path}":
                self.fail(f"the healthcheck requests {url!r}")
            labels = app.get("deploy", {}).get("labels", {})
            rule = labels.get(f"traefik.http.routers.{config.name}.rule")
            if rule is not None and rule != host_rule(config.domain):
                self.fail(f"router rule {rule!r}")
            path = labels.get(f"traefik.http.services.{config.name}.loadbalancer.healthcheck.path")
            if path is not None and path != config.app.health_path:
                self.fail(f"Traefik's health check path {path!r}")
        migrate = doc["services"].get("migrate")
        command = config.migrate.command
        if migrate is not None and command is not None:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            if migrate["command"] != argv:
                self.fail(f"migrate runs {migrate['command']!r}, not {argv!r}")
        for name, item in doc.get("configs", {}).items():
            content = item.get("content")
            if content is None:
                continue
            if name.endswith(".py") and (said := _compiles(content)):
                self.fail(f"config {name} does not compile: {said}")
            if name.endswith((".yml", ".yaml")):
                _load(content)
            if name == "traefik.yml":
                self.traefik_static(config, content)

    def traefik_static(self, config: Config, text: str) -> None:
        acme = _load(text)["certificatesResolvers"]["composekit"]["acme"]
        if (acme["caServer"], acme.get("email")) != (config.acme.directory_url, config.acme.email):
            self.fail(f"traefik.yml has caServer {acme['caServer']!r} and email {acme.get('email')!r}")

    def dockerfile(self, config: Config, text: str) -> None:
        lines = text.replace("\\\n", " ").splitlines()
        for line in lines:
            if line.startswith("RUN "):
                script = " ".join(w for w in line[4:].split(" ") if not w.startswith("--mount=")).strip()
                self.scripts.setdefault(script, self.where)
                for argv in sh_commands(script):
                    if argv[0] not in DOCKERFILE_PROGRAMS:
                        self.fail(f"the Dockerfile runs {argv!r}")
                    if argv[0] == "mkdir" and argv[2:] != sorted(config.app.volumes.values()):
                        self.fail(f"the Dockerfile makes {argv[2:]!r}")
            if line.startswith("CMD "):
                cmd = json.loads(line[4:])
                if cmd != ["gunicorn", "--config", GUNICORN_CONF_PATH, config.app.module]:
                    self.fail(f"the Dockerfile's CMD is {cmd!r}")

    def parse_scripts(self, tmp: Path) -> None:
        """One `sh -n` for every script; on failure, one per script to name the culprits."""
        batch = tmp / "scripts.sh"
        batch.write_text("\n".join(f"(\n{script}\n)" for script in self.scripts))
        if subprocess.run(["sh", "-n", str(batch)], capture_output=True, check=False, timeout=60).returncode == 0:
            return
        for script, where in self.scripts.items():
            done = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False, timeout=10)
            if done.returncode != 0:
                self.problems.append(f"{where}: sh cannot parse {script!r:.300}: {done.stderr.strip()}")


def _project_dir(root: Path) -> None:
    (root / "requirements.txt").write_text("fastapi\n")
    (root / "app.env").write_text("A=1\n")
    (root / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "db_password").write_text("not-a-real-password\n")


def test_every_string_key_is_fuzzed() -> None:
    """The walk finds the keys of the model, the new ones included (a sample of what must be there)."""
    slots = string_slots()
    for path in [
        ("name",),
        ("domain",),
        ("acme", "email"),
        ("acme", "ca_certificates", 0),
        ("app", "health_path"),
        ("app", "environment", KEY_SLOT),
        ("app", "environment", MAP_KEY),
        ("app", "volumes", MAP_KEY),
        ("app", "placement", 0),
        ("migrate", "command"),
        ("migrate", "command", 0),
        ("migrate", "state_command"),
        ("smoke", "checks", 0, "path"),
        ("smoke", "checks", 0, "json_key"),
        ("swarm", "nodes", MAP_KEY),
        ("registry",),
        ("host",),
    ]:
        assert path in slots
    top = {p[0] for p in slots}
    assert top >= {name for name, f in Config.model_fields.items() if f.annotation is str}


def test_the_base_configs_render() -> None:
    with tempfile.TemporaryDirectory(prefix="ck-fuzz-") as tmp:
        root = Path(tmp)
        _project_dir(root)
        for doc in (BASE, _merge(BASE, SWARM)):
            (root / "composekit.yaml").write_text(yaml.safe_dump(doc))
            checker = Checker()
            project = load_project((root / "composekit.yaml",))
            checker.check(project, render_stack(project).files)
            assert checker.problems == []
            assert app_image(project.config) == "fz-app:latest"


@pytest.mark.parametrize("part", range(PARTS), ids=lambda part: f"every {PARTS}th from {part}")
def test_hostile_strings_in_every_string_key(part: int) -> None:
    """500 configs of 1 to 3 hostile values: a ConfigError naming key paths, or files that parse with every value
    intact; never another exception. The same 500 in PARTS tests of every PARTS-th config, so that the workers share
    them."""
    checker = Checker()
    rendered = refused = 0
    share = range(part, CONFIGS, PARTS)
    with tempfile.TemporaryDirectory(prefix="ck-fuzz-") as tmp:
        root = Path(tmp)
        _project_dir(root)
        config_file = root / "composekit.yaml"
        for number, (doc, chosen) in enumerate(generated_configs()):
            if number not in share:
                continue
            checker.where = f"config {number} ({', '.join('/'.join(map(str, p)) for p in chosen)})"
            config_file.write_text(yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True))
            try:
                project = load_project((config_file,))
                files = render_stack(project).files
            except ConfigError as exc:
                refused += 1
                for problem in exc.problems:
                    if not re.match(rf"^({re.escape(str(config_file))}|composekit\.yaml): [\w/-]+[:/ ]", problem):
                        checker.fail(f"a problem that names no key path: {problem!r:.300}")
                continue
            except Exception as exc:  # any other exception is what this test looks for
                checker.fail(f"{type(exc).__name__}: {exc!s:.300}")
                continue
            rendered += 1
            checker.check(project, files)
        checker.parse_scripts(root)
    assert not checker.problems, "\n".join(checker.problems)
    # Enough of both outcomes in each part that the test means something.
    assert rendered >= len(share) // 10 and refused >= len(share) // 2, (rendered, refused)
