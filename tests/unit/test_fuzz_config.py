"""Generated bad configs through the real CLI, in-process: `render`, `config` and `up` must each exit 1 with
`error: ` lines that name the bad file, never a traceback, write nothing and never reach Docker.

Hypothesis runs derandomized (the same examples on every machine, so CI is reproducible) and without a
deadline. Every bad value here is bad by the documented schema; a config the CLI accepts fails the test.
test_fuzz_render.py puts hostile strings in every string key and checks what renders.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.testing
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import composekit.engine.docker
from composekit.cli import app as cli_app
from composekit.config import OVERRIDE_FILENAME, Config

runner = CliRunner()
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMMANDS = (["render"], ["config"], ["up", "--no-smoke"])

BASE: dict[str, Any] = {
    "name": "fz",
    "domain": "fz.example.com",
    "app": {"module": "app.main:app"},
    "database": {"password_file": "secrets/db_password"},
}

NUL = "a\x00b"
LONG = "Ж" * 300
# Strings no validated key accepts: shell-style substitutions (Compose would expand them), NUL, a 300-char
# non-ASCII string, spaces, the empty string.
BAD_STRINGS = ["$HOME", "${X:-y}", NUL, "\x00", LONG, "x y " * 75, "", " "]
WRONG_TYPES: list[Any] = [[], {}, [1, "a"], {"k": "v"}, True, False]
BAD_NUMBERS: list[Any] = [math.nan, math.inf, -math.inf, -1, 0, -(10**30), 0.5]
ANY_BAD: list[Any] = BAD_STRINGS + WRONG_TYPES + BAD_NUMBERS
# For keys that hold a path: the file must exist, and none of these does (or can).
BAD_PATHS: list[Any] = ["$HOME", "${X:-y}", NUL, LONG, "missing/file", *WRONG_TYPES, math.nan, 10**30]
PORTS: list[Any] = BAD_STRINGS + WRONG_TYPES + [math.nan, math.inf, -1, 0, 65536, 10**30, 0.5, 8000.0, None]
POSITIVE_NUMBER: list[Any] = BAD_STRINGS + WRONG_TYPES + [math.nan, math.inf, -math.inf, -1, 0, -0.0]
POSITIVE_INT: list[Any] = BAD_STRINGS + WRONG_TYPES + [math.nan, math.inf, -1, 0, 0.5, 2.0]
MEMORY: list[Any] = ["$HOME", "${X:-y}", NUL, "lots", "-1M", "0", "1X", LONG, *WRONG_TYPES, math.nan, math.inf, -1, 0]

FIELDS: dict[tuple[str, ...], list[Any]] = {
    ("name",): [*ANY_BAD, None, "UPPER", "-x"],
    ("domain",): [*ANY_BAD, None, "localhost", "a" * 300, "Shop.Example.com"],
    ("acme",): ["x", [], 1, True],
    ("acme", "email"): [*ANY_BAD, "no-at-sign", "a@b"],
    ("acme", "ca_server"): [*ANY_BAD, None, "http://insecure.example/dir"],
    ("acme", "ca_certificates"): ["x", [1], [None], ["missing.pem"], [NUL], ["$HOME"], {}, 1],
    ("acme", "challenge"): [*ANY_BAD, None, "dns"],
    ("app",): ["x", [], 1, None, True, math.nan],
    ("app", "path"): [*BAD_PATHS, None],
    ("app", "dockerfile"): BAD_PATHS,
    ("app", "module"): [*ANY_BAD, None, "main", "app.main"],
    ("app", "port"): PORTS,
    ("app", "health_path"): [*ANY_BAD, None, "health", "/a b", "/a\x00b", "/\t"],
    ("app", "workers"): [*POSITIVE_INT, None, "many"],
    ("app", "workers_per_core"): [*POSITIVE_NUMBER, None],
    ("app", "cpus"): POSITIVE_NUMBER,
    ("app", "max_workers"): POSITIVE_INT,
    ("app", "worker_memory"): [*MEMORY, None],
    ("app", "memory"): MEMORY,
    ("app", "env_file"): BAD_PATHS,
    ("app", "environment"): [
        "x",
        [],
        1,
        True,
        None,
        {"bad key": "v"},
        {"A": None},
        {"A": []},
        {"A": {"b": 1}},
        {"DB_PASSWORD": "x"},
        {"A": NUL},
        {"$HOME": "x"},
        {1: "x"},
        {"": "x"},
        {"A-B": "x"},
    ],
    ("app", "volumes"): [
        "x",
        [],
        1,
        None,
        {"data": "rel"},
        {"acme": "/x"},
        {"$HOME": "/x"},
        {"d": "/"},
        {"d": 1},
        {"d": None},
        {"d": "/a\x00b"},
        {"db-data": "/data"},
        {"": "/x"},
    ],
    ("migrate",): ["x", [], 1, True],
    ("migrate", "command"): ["", " ", [], [1], [None], {}, 1, True, math.nan, [NUL], NUL, ["ok", []]],
    ("database",): ["x", [], 1, True, {}, {"engine": "mysql", "password_file": "secrets/db_password"}],
    ("database", "name"): [*ANY_BAD, None, "Shop", "1db", "a" * 64],
    ("database", "user"): [*ANY_BAD, None, "Shop"],
    ("database", "password_file"): [*BAD_PATHS, None, "", " "],
    ("database", "engine"): [*ANY_BAD, None, "mysql"],
    ("images",): ["x", [], 1, True],
    ("images", "python"): [*ANY_BAD, None, "-x", "a b:1"],
    ("images", "traefik"): [*ANY_BAD, None],
    ("images", "postgres"): [*ANY_BAD, None],
    ("ports",): ["x", [], 1, True, {"http": 443, "https": 443}],
    ("ports", "http"): [*PORTS, 443],
    ("ports", "https"): [*PORTS, 80],
    ("smoke",): ["x", [], 1, True],
    ("smoke", "latency_ms"): [*POSITIVE_INT, None],
    ("smoke", "cert_warn_days"): BAD_STRINGS + WRONG_TYPES + [math.nan, math.inf, -1, 0.5, None, 3],
    ("smoke", "cert_fail_days"): BAD_STRINGS + WRONG_TYPES + [math.nan, math.inf, -1, 0.5, None, 22, 10**30],
    ("smoke", "resolve"): [*ANY_BAD, "example.com", "999.1.1.1"],
    ("smoke", "ca_file"): [*WRONG_TYPES, 1, math.nan],
    ("smoke", "checks"): [
        "x",
        [1],
        [{}],
        [{"path": "x"}],
        [{"path": "/", "status": 99}],
        [{"path": "/", "bogus": 1}],
        [{"path": "/", "status": "200"}],
        [{"path": "/", "contains": []}],
        {"path": "/"},
    ],
}

SECTIONS = {name: field.annotation for name, field in Config.model_fields.items()}


def _unknown_key_strategy() -> st.SearchStrategy[tuple[tuple[str, ...], Any]]:
    """An unknown key at the top level or inside a section (every model forbids extra keys)."""
    sections = st.sampled_from(
        [(), ("acme",), ("app",), ("migrate",), ("database",), ("images",), ("ports",), ("smoke",)]
    )
    key = st.one_of(
        st.sampled_from(["$HOME", "${X:-y}", NUL, LONG, "workerz", "Name", "app ", "x-extension", "1"]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-$.{}", min_size=1, max_size=12),
    )

    def known(section: tuple[str, ...], name: str) -> bool:
        if not section:
            return name in Config.model_fields
        annotation = SECTIONS[section[0]]
        models = [annotation, *getattr(annotation, "__args__", ())]
        return any(name in getattr(m, "model_fields", {}) for m in models)

    return (
        st.tuples(sections, key, st.sampled_from([1, "x", None, {"a": 1}]))
        .filter(lambda t: not known(t[0], t[1]))
        .map(lambda t: ((*t[0], t[1]), t[2]))
    )


FIELD_MUTATION = st.sampled_from(sorted(FIELDS, key="/".join)).flatmap(
    lambda path: st.tuples(st.just(path), st.sampled_from(FIELDS[path]))
)
MUTATIONS = st.lists(st.one_of(FIELD_MUTATION, _unknown_key_strategy()), min_size=1, max_size=3)


def _apply(base: dict[str, Any], mutations: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(base)
    for path, value in mutations:
        node = doc
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {"module": "app.main:app"} if part == "app" else {}
                if part == "database":
                    node[part]["password_file"] = "secrets/db_password"
            node = node[part]
        node[path[-1]] = value
    return doc


# libyaml's emitter when present (the configs it writes read back the same; a third of an example's time with the
# Python one); composekit reads them with its own loader.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(doc: Any) -> bytes:
    return yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True, sort_keys=False).encode()


# Raw text no parser should turn into a traceback.
FLOW = yaml.safe_dump(BASE, default_flow_style=True, width=1000).strip()


def _raw_texts() -> st.SearchStrategy[bytes]:
    valid = _dump(BASE)
    truncated = st.integers(1, len(FLOW) - 2).map(lambda n: FLOW[:n].encode())
    inserted = st.tuples(
        st.integers(0, len(valid)),
        st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"caf\xe9", b"\x00", b"\x1b[31m", b"\xed\xa0\x80"]),
    ).map(lambda t: valid[: t[0]] + t[1] + valid[t[0] :])
    # 600 levels of "[" exceed PyYAML's recursion (RecursionError); deeper only costs time.
    deep = (
        st.tuples(st.sampled_from([50, 300, 600, 20000]), st.sampled_from(["[", "{a: "]))
        .filter(lambda t: t[0] < 20000 or t[1] != "[")
        .map(lambda t: (valid.decode() + "app: " + t[1] * t[0] + ("]" if t[1] == "[" else "}") * t[0] + "\n").encode())
    )
    huge = st.sampled_from([4301, 5000, 100000]).map(
        lambda n: (
            yaml.safe_dump({k: v for k, v in BASE.items() if k != "app"}) + "app:\n  module: app.main:app\n"
            "  port: " + "9" * n + "\n"
        ).encode()
    )
    not_a_mapping = st.sampled_from(
        [
            b"- a\n- b\n",
            b"42\n",
            b"just text\n",
            b"~\n",
            b"'quoted'\n",
            b"[1, 2]\n",
            b"a: 1\n---\nb: 2\n",
            b"!!python/object:os.system {}\n",
            b"&a [*a]\n",
            b"\t- tab\n",
            b"---\n",
            b"...",
            b"name: 2024-13-45\n",
        ]
    )
    return st.one_of(truncated, inserted, deep, huge, not_a_mapping)


@dataclass
class Tree:
    root: Path

    def snapshot(self) -> dict[str, bytes | None]:
        return {
            p.relative_to(self.root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(self.root.rglob("*"))
        }


@pytest.fixture(autouse=True)
def docker_must_not_be_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("composekit.engine.docker.Docker was constructed: a bad config reached Docker")

    monkeypatch.setattr(composekit.engine.docker.Docker, "__init__", refuse)


@pytest.fixture(scope="module", autouse=True)
def build_the_cli_once() -> Iterator[None]:
    """CliRunner rebuilds the click command from the typer app at every call (16 ms, most of an example's
    time); the command is the same each time, so build it once."""
    original = typer.testing._get_command  # type: ignore[attr-defined]
    command = original(cli_app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda app: command if app is cli_app else original(app))
        yield


CONFIG_NAMES = ["composekit.yaml", "staging.yaml", "local.yaml"]


def _app_files(tmp: Path) -> None:
    """What the config points at: the app, its requirements, the database password."""
    (tmp / "requirements.txt").write_text("fastapi\n")
    (tmp / "app").mkdir()
    (tmp / "app" / "main.py").write_text("app = None\n")
    (tmp / "secrets").mkdir()
    (tmp / "secrets" / "db_password").write_text("not-a-real-password\n")


def _config_files(tmp: Path, files: list[bytes], override: bytes | None = None) -> list[Path]:
    """Exactly these config files (one to three) and override file in ``tmp``, the previous example's removed."""
    for name in (*CONFIG_NAMES, OVERRIDE_FILENAME):
        (tmp / name).unlink(missing_ok=True)
    paths = []
    for name, content in zip(CONFIG_NAMES, files, strict=False):
        (tmp / name).write_bytes(content)
        paths.append(tmp / name)
    if override is not None:
        (tmp / OVERRIDE_FILENAME).write_bytes(override)
    return paths


def _project(tmp: Path, files: list[bytes], override: bytes | None = None) -> list[Path]:
    _app_files(tmp)
    return _config_files(tmp, files, override)


_SHARED: list[Path] = []  # the module's one project directory (shared_project below)


@pytest.fixture(scope="module", autouse=True)
def shared_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One project directory for the module's generated configs: the app's files are read-only inputs (every
    command must leave the tree unchanged, which assert_rejected checks), so each example writes only its config
    files; a new directory per example cost more than the three commands run in it."""
    root = tmp_path_factory.mktemp("ck-fuzz")
    _app_files(root)
    _SHARED.append(root)
    yield root
    _SHARED.remove(root)


def assert_rejected(files: list[bytes], blamed: str, override: bytes | None = None) -> None:
    """Every command exits 1 with `error: ` lines naming ``blamed``; the tree is unchanged."""
    root = _SHARED[0]
    paths = _config_files(root, files, override)
    tree = Tree(root)
    before = tree.snapshot()
    options = [arg for p in paths for arg in ("-c", str(p))]
    for command in COMMANDS:
        result = runner.invoke(cli_app, [*options, *command])
        shown = f"composekit {' '.join(command)}: exit {result.exit_code}\n{result.output}"
        assert type(result.exception) is SystemExit, shown + f"\nexception: {result.exception!r}"
        assert result.exit_code == 1, shown
        assert "Traceback" not in result.output, shown
        assert result.stdout == "", shown
        lines = result.stderr.splitlines()
        assert lines, shown
        for line in lines:
            assert line.startswith("error: "), shown
            assert blamed in line, shown
        assert tree.snapshot() == before, f"composekit {' '.join(command)} wrote into the project"


def test_the_base_config_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzer's starting point is valid, so the bad parts below are what every error is about."""
    with tempfile.TemporaryDirectory(prefix="ck-fuzz-") as tmp:
        paths = _project(Path(tmp), [_dump(BASE)])
        result = runner.invoke(cli_app, ["-c", str(paths[0]), "config"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli_app, ["-c", str(paths[0]), "render", "-o", "-"])
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("path", list(FIELDS), ids="/".join)
def test_every_listed_bad_value_alone(path: tuple[str, ...]) -> None:
    """Each value of FIELDS on its own, so that none depends on the draw (hypothesis combines them below); one test
    per key, so that the workers share them."""
    failures = []
    for value in FIELDS[path]:
        try:
            assert_rejected([_dump(_apply(BASE, [(path, value)]))], "composekit.yaml")
        except AssertionError as exc:
            failures.append(f"{'/'.join(path)} = {value!r:.60}: {str(exc).splitlines()[0]}")
    assert not failures, "\n".join(failures)


@settings(FUZZ, max_examples=300)
@given(MUTATIONS)
def test_bad_values_in_one_file(mutations: list[tuple[tuple[str, ...], Any]]) -> None:
    assert_rejected([_dump(_apply(BASE, mutations))], "composekit.yaml")


@settings(FUZZ, max_examples=120)
@given(_raw_texts())
def test_bad_text_in_one_file(text: bytes) -> None:
    assert_rejected([text], "composekit.yaml")


@settings(FUZZ, max_examples=120)
@given(st.integers(2, 3), st.one_of(MUTATIONS.map(lambda m: ("doc", m)), _raw_texts().map(lambda t: ("raw", t))))
def test_bad_part_in_a_later_merged_file(count: int, bad: tuple[str, Any]) -> None:
    """`-c a -c b [-c c]`: the earlier files are valid, the last one holds the bad part and is named."""
    files = [_dump(BASE), _dump({"app": {"workers": 2}})][: count - 1]
    kind, payload = bad
    files.append(_dump(_apply({}, payload)) if kind == "doc" else payload)
    blamed = ["composekit.yaml", "staging.yaml", "local.yaml"][count - 1]
    assert_rejected(files, blamed)


BAD_OVERRIDES = st.one_of(
    st.sampled_from(
        [
            b"- a\n- b\n",
            b"42\n",
            b"just text\n",
            b"services: [app]\n",
            b"services: {app: 1}\n",
            b"services:\n  app:\n    bogus_key: 1\n",
            b"services:\n  app:\n    environment: {A: 1}\n    imagee: x\n",
            b"servces: {}\n",
            b"services: {app: {image: x}}\nvolumes: 1\n",
            b"services: {\n",
            b"services:\n\t- x\n",
            b"a: 1\n---\nb: 2\n",
            b"services: {app: {labels: [a]}}\x00\n",
            b"\xff\xfe",
            b"services: {caf\xe9: {}}\n",
            b"[" * 1000,
            b"services:\n  app: &a [*a]\n",
            b"services: {app: {build: .}}\nx-ok: 1\nvolumes: [a]\n",
        ]
    ),
    st.integers(1, len(b"services: {app: {environment: {A: '1'}}}") - 1).map(
        lambda n: b"services: {app: {environment: {A: '1'}}}"[:n]
    ),
)


@settings(FUZZ, max_examples=60)
@given(BAD_OVERRIDES)
def test_bad_override_file(override: bytes) -> None:
    assert_rejected([_dump(BASE)], OVERRIDE_FILENAME, override=override)


# The bugs the fuzzer found, each pinned with its message word for word ------------------------------------


def errors_of(tmp: Path, config: bytes, override: bytes | None = None) -> list[str]:
    paths = _project(tmp, [config], override)
    result = runner.invoke(cli_app, ["-c", str(paths[0]), "config"])
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    return result.stderr.splitlines()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # was a UnicodeDecodeError traceback
        (b"name: caf\xe9\n", "expected UTF-8 text, got byte 0xe9 at offset 9"),
        # was a two-line message, its second line without "error: "
        (
            b"name: fz\ndomain: a\x00\n",
            "invalid YAML at line 2, column 10: character U+0000 is not allowed (special characters are not allowed)",
        ),
        # were a RecursionError and a ValueError traceback
        (b"app: " + b"[" * 600 + b"]" * 600, "invalid YAML: nested too deeply to read"),
        (
            b"app:\n  port: " + b"9" * 5000,
            "invalid YAML: Exceeds the limit (4300 digits) for integer string "
            "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to "
            "increase the limit",
        ),
        (b"name: 2024-13-45\n", "invalid YAML: month must be in 1..12"),
    ],
)
def test_unreadable_yaml_is_one_error_line(tmp_path: Path, text: bytes, message: str) -> None:
    assert errors_of(tmp_path, text) == [f"error: {tmp_path / 'composekit.yaml'}: {message}"]


def test_nul_characters_are_refused_where_they_land(tmp_path: Path) -> None:
    """They were rendered (or raised ValueError in app/path): no argv, environment or path can carry one."""
    doc = _apply(
        BASE,
        [
            (("app", "health_path"), "/a\x00b"),
            (("app", "environment"), {"A": "x\x00"}),
            (("migrate", "command"), ["echo", "\x00"]),
            (("app", "path"), "\x00"),
            (("app", "port"), "80"),
        ],
    )
    assert errors_of(tmp_path, _dump(doc)) == [
        f'error: {tmp_path}/composekit.yaml: app/health_path: expected text without NUL characters, got "/a\\u0000b"',
        f'error: {tmp_path}/composekit.yaml: app/environment/A: expected text without NUL characters, got "x\\u0000"',
        f'error: {tmp_path}/composekit.yaml: app/path: expected text without NUL characters, got "\\u0000"',
        f'error: {tmp_path}/composekit.yaml: migrate/command/1: expected text without NUL characters, got "\\u0000"',
        f'error: {tmp_path}/composekit.yaml: app/port: expected a port number from 1 to 65535, got "80"',
    ]


def test_infinite_cpus_and_non_ascii_images_are_refused(tmp_path: Path) -> None:
    """Both were rendered, for Docker to refuse them only at `up`."""
    doc = _apply(
        BASE, [(("app", "cpus"), math.inf), (("app", "workers_per_core"), math.inf), (("images", "python"), "pythön:3")]
    )
    assert errors_of(tmp_path, _dump(doc)) == [
        f"error: {tmp_path}/composekit.yaml: app/workers_per_core: expected a positive number, got Infinity",
        f"error: {tmp_path}/composekit.yaml: app/cpus: expected a positive number, got Infinity",
        f'error: {tmp_path}/composekit.yaml: images/python: expected an image reference such as "python:3.13-slim", '
        'got "pyth\\u00f6n:3"',
    ]


def test_a_path_too_long_for_the_os_is_missing_not_a_traceback(tmp_path: Path) -> None:
    """Path.is_file raised OSError(ENAMETOOLONG)."""
    name = "Ж" * 300
    doc = _apply(BASE, [(("app", "dockerfile"), name), (("app", "env_file"), name)])
    assert errors_of(tmp_path, _dump(doc)) == [
        f"error: composekit.yaml: app/dockerfile: {name!r} not found in {tmp_path}; fix the path, or remove the "
        "key to let composekit generate a Dockerfile",
        f"error: composekit.yaml: app/env_file: {name!r} does not exist; create it (it holds the app's secrets, "
        "keep it out of git) or remove the key",
    ]


@pytest.mark.parametrize(
    ("override", "messages"),
    [
        (b"- a\n", ["expected a mapping of Compose keys (services, volumes, ...) at the top level, got a list"]),
        (b"services: {\n", ["invalid YAML at line 2, column 1: expected the node content, but found '<stream end>'"]),
        (
            b"servces: {}\nservices: [app]\n",
            [
                "servces: unknown Compose key (expected one of: configs, include, models, name, networks, secrets, "
                "services, version, volumes, or x-...)",
                "services: expected a mapping, got a list",
            ],
        ),
        (
            b"services:\n  app: 1\n  db:\n    imagee: x\n    x-mine: 1\n    image: x\n",
            [
                "services/app: expected a mapping of Compose service keys, got a number",
                "services/db/imagee: unknown Compose service key (extension keys start with x-)",
            ],
        ),
    ],
)
def test_bad_override_file_is_refused_before_docker(tmp_path: Path, override: bytes, messages: list[str]) -> None:
    """Was passed to Docker as is: `up` wrote and built, then `docker compose` failed."""
    where = tmp_path / OVERRIDE_FILENAME
    assert errors_of(tmp_path, _dump(BASE), override) == [f"error: {where}: {m}" for m in messages]


def test_a_valid_override_file_passes(tmp_path: Path) -> None:
    paths = _project(tmp_path, [_dump(BASE)], b"services:\n  app:\n    x-note: 1\n    labels: [a=b]\n  redis: ~\n")
    result = runner.invoke(cli_app, ["-c", str(paths[0]), "config"])
    assert result.exit_code == 0, result.output
