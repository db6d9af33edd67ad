"""Migration state per release (issue 9): the state command, `alembic current`'s output, the read after the migration,
the release record, the rollback guard's decisions and messages, and the config keys and flag around them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import composekit.cli.releases as cli_releases
import composekit.cli.stack as cli_stack
import composekit.deploy.self_check
from composekit.cli import app as cli
from composekit.config.project import Project, load_project
from composekit.config.sections import Migrate
from composekit.deploy import UpResult, rollback_on_error_setting
from composekit.engine import steps
from composekit.engine.docker import ContainerInfo
from composekit.engine.migration_state import StateCommand, parse_alembic_current, state_command
from composekit.engine.probes import ProbeReport
from composekit.engine.releases import Guard, LastMigration, Release, ReleaseRow, read_releases, rollback_guard
from composekit.engine.switch import SwitchResult
from composekit.engine.wait import Deadline
from composekit.errors import ConfigError, DockerError, SelfCheckError

from .fake_clock import fake_deadline


def project(tmp_path: Path, extra: dict[str, Any] | None = None) -> Project:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    config = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}, **(extra or {})}
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump(config))
    return load_project((tmp_path / "composekit.yaml",))


# the release record --------------------------------------------------------------------------------------------


class Routes:
    """The routes container's releases.json, as read_releases reads it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def containers(self) -> list[ContainerInfo]:
        return [ContainerInfo("id", "shop-routes-1", "routes", "running", None, None, 0, None, None, 1, "sha256:py")]

    def exec(self, name: str, argv: list[str]) -> str:
        return self.text


def test_a_release_round_trips_with_and_without_its_migration_state() -> None:
    old = {"id": "r1", "image": "sha256:1", "created": "2026-11-29T10:00:00Z", "config_hash": "h1"}
    new = {"id": "r2", "image": "sha256:2", "created": "2026-11-30T10:00:00Z", "config_hash": "h2", "migration": "0002"}
    read = read_releases(Routes(json.dumps([old, new])))  # type: ignore[arg-type]
    assert read == [
        Release("r1", "sha256:1", "2026-11-29T10:00:00Z", "h1", None),  # written before states were recorded
        Release("r2", "sha256:2", "2026-11-30T10:00:00Z", "h2", "0002"),
    ]
    rewritten = json.dumps([r.__dict__ for r in read])
    assert read_releases(Routes(rewritten)) == read  # type: ignore[arg-type]


# alembic current -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "state"),
    [
        ("3f2a1b9c0d4e (head)\n", "3f2a1b9c0d4e"),
        ("0002 (head)\n", "0002"),
        ("3f2a1b9c0d4e\n", "3f2a1b9c0d4e"),  # behind head: still the state
        ("ae1027a6acf (head)\n27c6a30d7c24 (head)\n", "27c6a30d7c24,ae1027a6acf"),  # two heads, sorted
        ("4c5d6e7f8a9b (branch_a) (head) (mergepoint)\n", "4c5d6e7f8a9b"),
        # --verbose
        (
            "Current revision(s) for postgresql+psycopg://notes:***@db:5432/notes:\nRev: 3f2a1b9c0d4e (head)\n"
            "Parent: 1a2b3c4d5e6f\nPath: /app/migrations/versions/3f2a_notes.py\n\n    add notes\n\n"
            "    Revision ID: 3f2a1b9c0d4e\n",
            "3f2a1b9c0d4e",
        ),
        # INFO lines belong on stderr; if an env.py logs to stdout they are still not revisions
        (
            "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n"
            "INFO  [alembic.runtime.migration] Will assume transactional DDL.\n0001 (head)\n",
            "0001",
        ),
        ("", None),  # a database Alembic never migrated
        ("\n  \n", None),
    ],
)
def test_alembic_current_output_gives_the_revisions(stdout: str, state: str | None) -> None:
    assert parse_alembic_current(stdout) == state


# the state command ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("migrate", "expected"),
    [
        ({"command": "alembic upgrade head"}, StateCommand(("alembic", "current"), alembic=True)),
        ({"command": ["alembic", "upgrade", "head"]}, StateCommand(("alembic", "current"), alembic=True)),
        (
            {"command": "/opt/venv/bin/alembic -c db/alembic.ini --raiseerr -x tenant=acme upgrade head"},
            StateCommand(("/opt/venv/bin/alembic", "-c", "db/alembic.ini", "-x", "tenant=acme", "current"), True),
        ),
        (
            {"command": "alembic --config=db/alembic.ini upgrade head"},
            StateCommand(("alembic", "--config=db/alembic.ini", "current"), True),
        ),
        (
            {"command": ["sh", "-c", "python3 -m app.wait_for_db && alembic -n tenants upgrade heads"]},
            StateCommand(("alembic", "-n", "tenants", "current"), alembic=True),
        ),
        (
            {"command": ["bash", "-ec", "set -x\nalembic upgrade head; echo done"]},
            StateCommand(("alembic", "current"), True),
        ),
        ({"command": "sh -c 'alembic upgrade head'"}, StateCommand(("alembic", "current"), alembic=True)),
        (  # what init writes for src/alembic.ini whose script_location is relative: current runs from src/ too
            {"command": "sh -c 'cd src && alembic upgrade head'"},
            StateCommand(("sh", "-c", "cd src && alembic current"), alembic=True),
        ),
        (
            {"command": ["bash", "-c", "cd 'my db' && alembic -c alembic.ini upgrade head && cd .. && echo ok"]},
            StateCommand(("bash", "-c", "cd 'my db' && alembic -c alembic.ini current"), alembic=True),
        ),
        ({"command": "python3 -m app.migrate"}, None),  # not alembic: unknown
        ({"command": ["sh", "-c", "echo alembic upgrade head"]}, None),  # alembic only as an argument
        ({}, None),  # no migration
        (
            {"command": "alembic upgrade head", "state_command": "python3 -m app.schema_version"},
            StateCommand(("python3", "-m", "app.schema_version"), alembic=False),
        ),
        (
            {"command": "python3 -m app.migrate", "state_command": ["python3", "-c", "print(7)"]},
            StateCommand(("python3", "-c", "print(7)"), alembic=False),
        ),
    ],
)
def test_the_state_command_is_derived_from_the_migration(
    migrate: dict[str, Any], expected: StateCommand | None
) -> None:
    assert state_command(Migrate.model_validate(migrate)) == expected


# reading the state after the migration -------------------------------------------------------------------------


def one_off(status: str, exit_code: int | None) -> ContainerInfo:
    return ContainerInfo("s1", "shop-migrate-state", "migrate", status, None, exit_code, 0, None, None, None, "img")


class StateEngine:
    """A one-off container that runs, then exits with ``exit_code`` and ``output`` (stdout, stderr)."""

    def __init__(self, exit_code: int, output: tuple[str, str], fail_run: bool = False) -> None:
        self.states = [[one_off("running", None)], [one_off("exited", exit_code)]]
        self.output = output
        self.fail_run = fail_run
        self.started = False
        self.removed = False
        self.calls: list[Any] = []

    def containers(self) -> list[ContainerInfo]:
        if not self.started or self.removed:
            return []
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def run_one_off(self, service: str, argv: list[str], name: str) -> None:
        self.calls.append(("run", service, argv, name))
        if self.fail_run:
            raise DockerError("`docker compose run migrate` failed", ["docker", "compose", "run"], "no such service")
        self.started = True

    def container_output(self, name: str) -> tuple[str, str]:
        self.calls.append(("output", name))
        return self.output

    def remove_now(self, name: str) -> None:
        self.calls.append(("remove", name))
        self.removed = True


ALEMBIC = {"migrate": {"command": "alembic upgrade head"}}
INFO = "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n"


def test_the_state_is_read_after_the_migration_from_stdout_only(tmp_path: Path) -> None:
    engine = StateEngine(0, ("0002 (head)\n", INFO + "INFO  [alembic.runtime.migration] Will assume DDL.\n"))
    said: list[str] = []
    state = steps.read_migration_state(project(tmp_path, ALEMBIC), engine, fake_deadline(30), said.append)  # type: ignore[arg-type]
    assert state == "0002"
    assert engine.calls == [
        ("run", "migrate", ["alembic", "current"], "shop-migrate-state"),
        ("output", "shop-migrate-state"),
        ("remove", "shop-migrate-state"),
    ]
    assert said == ["reading the migration state (`alembic current`)", "migration state: 0002"]


def test_a_custom_state_command_records_its_stdout_stripped(tmp_path: Path) -> None:
    engine = StateEngine(0, ("  schema 7\n", "note on stderr\n"))
    config = {"migrate": {"command": "python3 -m app.migrate", "state_command": "python3 -m app.version"}}
    state = steps.read_migration_state(project(tmp_path, config), engine, fake_deadline(30), lambda _: None)  # type: ignore[arg-type]
    assert state == "schema 7"


def test_a_failing_state_command_records_an_unknown_state_and_says_why(tmp_path: Path) -> None:
    engine = StateEngine(1, ("", INFO + "FAILED: Can't locate revision identified by '0003'\n"))
    said: list[str] = []
    state = steps.read_migration_state(project(tmp_path, ALEMBIC), engine, fake_deadline(30), said.append)  # type: ignore[arg-type]
    assert state is None
    assert said[-1] == (
        "warning: could not read the migration state with `alembic current` (it exited 1: FAILED: Can't locate "
        "revision identified by '0003'); the release records it as unknown"
    )
    assert engine.calls[-1] == ("remove", "shop-migrate-state")


def test_a_state_command_that_cannot_start_records_an_unknown_state(tmp_path: Path) -> None:
    engine = StateEngine(0, ("", ""), fail_run=True)
    said: list[str] = []
    assert steps.read_migration_state(project(tmp_path, ALEMBIC), engine, fake_deadline(30), said.append) is None  # type: ignore[arg-type]
    assert said[-1] == (
        "warning: could not read the migration state with `alembic current` (`docker compose run migrate` failed); "
        "the release records it as unknown"
    )


def test_an_empty_alembic_answer_is_an_unknown_state(tmp_path: Path) -> None:
    said: list[str] = []
    engine = StateEngine(0, ("", INFO))
    assert steps.read_migration_state(project(tmp_path, ALEMBIC), engine, fake_deadline(30), said.append) is None  # type: ignore[arg-type]
    assert said[-1] == "`alembic current` printed no migration state; the release records it as unknown"


def test_without_a_state_command_nothing_runs(tmp_path: Path) -> None:
    engine = StateEngine(0, ("", ""))
    config = {"migrate": {"command": "python3 -m app.migrate"}}
    assert steps.read_migration_state(project(tmp_path, config), engine, fake_deadline(30), lambda _: None) is None  # type: ignore[arg-type]
    assert engine.calls == []


# the rollback guard --------------------------------------------------------------------------------------------


def rel(id: str, migration: str | None) -> Release:
    return Release(id, f"sha256:{id}", "2026-11-30T10:00:00Z", "h", migration)


DIFFERS = (
    "the database was migrated since release a1: it is at migration state 0002 (recorded by release b2, the last "
    "deployed), release a1 was deployed at 0001"
)


@pytest.mark.parametrize(
    ("target", "database", "migrates", "compatible", "yes", "guard"),
    [
        (rel("a1", "0001"), rel("b2", "0001"), True, True, False, Guard(True)),
        (rel("a1", "0001"), rel("b2", "0001"), True, False, False, Guard(True)),  # same state: nothing to refuse
        (rel("a1", "0001"), rel("a1", "0001"), True, True, False, Guard(True)),
        (rel("a1", "0001"), None, True, True, False, Guard(True)),
        (
            rel("a1", "0001"),
            rel("b2", "0002"),
            True,
            True,
            False,
            Guard(
                False,
                f"{DIFFERS}. A rollback does not reverse migrations: release a1's code would run on the database at "
                "0002. Run `composekit rollback a1 --yes` if it works with that state "
                "(migrate/backward_compatible: true says it should)",
            ),
        ),
        (
            rel("a1", "0001"),
            rel("b2", "0002"),
            True,
            True,
            True,
            Guard(
                True,
                "the database stays at migration state 0002 (recorded by release b2, the last deployed); release a1 "
                "was deployed at 0001 (--yes)",
            ),
        ),
        *[
            (
                rel("a1", "0001"),
                rel("b2", "0002"),
                True,
                False,
                yes,
                Guard(
                    False,
                    f"{DIFFERS}, and migrate/backward_compatible is false: release a1's code does not run on a "
                    "database migrated since, so the rollback is refused, even with --yes. Deploy a release that "
                    "migrates the database explicitly instead (`composekit up` of code whose migration goes forward, "
                    "or back with a downgrade migration)",
                ),
            )
            for yes in (False, True)
        ],
        *[
            (
                rel("a1", a),
                rel("b2", b),
                True,
                compatible,
                False,
                Guard(
                    True,
                    f"the migration state is unknown (release a1: {a or 'unknown'}, release b2, the last deployed: "
                    f"{b or 'unknown'}), so composekit cannot tell whether the database was migrated since release a1; "
                    "rolling back anyway",
                ),
            )
            for a, b in (("0001", None), (None, "0002"), (None, None))
            for compatible in (True, False)
        ],
        (rel("a1", None), rel("b2", None), False, True, False, Guard(True)),  # a stack without migrations
    ],
)
def test_the_rollback_guard_decides_on_the_migration_states(
    target: Release, database: Release | None, migrates: bool, compatible: bool, yes: bool, guard: Guard
) -> None:
    assert rollback_guard(target, database, migrates=migrates, backward_compatible=compatible, yes=yes) == guard


LAST = LastMigration("c3", "0003", "2026-11-30T10:00:00Z")  # a migration whose release never went live
LEFT = (
    "the database was migrated since release a1: it is at migration state 0003 (left by the last migration, "
    "release c3's)"
)


def test_the_last_migrations_state_wins_over_the_newest_release_record() -> None:
    """c3's migration took the database to 0003, then c3 never went live: the newest release record (b2) still
    says 0002. Going back to b2 must not pass as "same state"."""
    b2 = rel("b2", "0002")
    assert rollback_guard(b2, b2, migrates=True, backward_compatible=True, yes=False) == Guard(True)  # the lag
    refused = rollback_guard(b2, b2, migrates=True, backward_compatible=True, yes=False, last=LAST)
    assert refused == Guard(
        False,
        "the database was migrated since release b2: it is at migration state 0003 (left by the last migration, "
        "release c3's), release b2 was deployed at 0002. A rollback does not reverse migrations: release b2's code "
        "would run on the database at 0003. Run `composekit rollback b2 --yes` if it works with that state "
        "(migrate/backward_compatible: true says it should)",
    )
    a1 = rel("a1", "0001")
    assert rollback_guard(a1, b2, migrates=True, backward_compatible=True, yes=True, last=LAST) == Guard(
        True,
        "the database stays at migration state 0003 (left by the last migration, release c3's); release a1 was "
        "deployed at 0001 (--yes)",
    )
    assert rollback_guard(a1, b2, migrates=True, backward_compatible=False, yes=True, last=LAST).message == (
        f"{LEFT}, release a1 was deployed at 0001, and migrate/backward_compatible is false: release a1's code does "
        "not run on a database migrated since, so the rollback is refused, even with --yes. Deploy a release that "
        "migrates the database explicitly instead (`composekit up` of code whose migration goes forward, or back "
        "with a downgrade migration)"
    )
    # The last migration left the target's state: go, whatever the newest release record says.
    same = LastMigration("c3", "0001", "2026-11-30T10:00:00Z")
    assert rollback_guard(a1, b2, migrates=True, backward_compatible=False, yes=False, last=same) == Guard(True)
    # The last migration's state unknown (its state read failed): nothing to compare, said so.
    unknown = LastMigration("c3", None, "2026-11-30T10:00:00Z")
    assert rollback_guard(a1, b2, migrates=True, backward_compatible=True, yes=False, last=unknown) == Guard(
        True,
        "the migration state is unknown (release a1: 0001, the last migration (release c3's): unknown), so composekit "
        "cannot tell whether the database was migrated since release a1; rolling back anyway",
    )


# config keys ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"migrate": {"command": "alembic upgrade head", "state_command": ""}},
            'migrate/state_command: expected a command line or a list of arguments, got ""',
        ),
        (
            {"migrate": {"command": "alembic upgrade head", "state_command": 7}},
            "migrate/state_command: expected a command line or a list of arguments, got 7",
        ),
        (
            {"migrate": {"state_command": "alembic current"}},
            "migrate/state_command: it runs in a container of the migration's service, and there is none: set "
            "migrate/command too, or remove migrate/state_command",
        ),
        (
            {"migrate": {"command": "alembic upgrade head", "backward_compatible": "no"}},
            'migrate/backward_compatible: expected true or false, got "no"',
        ),
        ({"releases": {"rollback_on_error": 1}}, "releases/rollback_on_error: expected true or false, got 1"),
    ],
)
def test_the_new_keys_are_validated_with_their_path(tmp_path: Path, extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        project(tmp_path, extra)
    assert caught.value.problems == [f"{tmp_path / 'composekit.yaml'}: {problem}"]


def test_the_new_keys_default_to_the_documented_values(tmp_path: Path) -> None:
    config = project(tmp_path).config
    assert (config.migrate.state_command, config.migrate.backward_compatible) == (None, True)
    assert config.releases.rollback_on_error is False


@pytest.mark.parametrize(
    ("configured", "flag", "effective"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True), (True, True, True)],
)
def test_the_flag_overrides_releases_rollback_on_error(
    tmp_path: Path, configured: bool, flag: bool | None, effective: bool
) -> None:
    p = project(tmp_path, {"releases": {"rollback_on_error": configured}})
    assert rollback_on_error_setting(p, flag) is effective


@pytest.mark.parametrize(
    ("args", "passed"),
    [([], None), (["--rollback-on-error"], True), (["--no-rollback-on-error"], False)],
)
def test_up_passes_the_flag_or_leaves_it_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], passed: bool | None
) -> None:
    project(tmp_path, {"releases": {"rollback_on_error": True}})
    monkeypatch.chdir(tmp_path)
    seen: list[bool | None] = []

    def up(project: Project, **kwargs: Any) -> UpResult:
        seen.append(kwargs["rollback_on_error"])
        return UpResult(url="https://shop.example.com/", containers=[])

    monkeypatch.setattr(cli_stack, "up_stack", up)
    result = CliRunner().invoke(cli, ["--host", "unix:///var/run/docker.sock", "up", "--no-smoke", *args])
    assert result.exit_code == 0, result.output
    assert seen == [passed]


# the CLI's releases --------------------------------------------------------------------------------------------


def test_releases_show_the_migration_state_and_carry_it_in_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    rows = [
        ReleaseRow(rel("20261130T031500Z", None), "shop-app:20261130T031500Z", False),
        ReleaseRow(rel("a1b2c3d4e5f6", "0002"), "shop-app:a1b2c3d4e5f6", True),
    ]
    monkeypatch.setattr(cli_releases, "list_releases", lambda project, docker: rows)
    runner = CliRunner()
    table = runner.invoke(cli, ["--host", "unix:///var/run/docker.sock", "releases"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == [
        "  20261130T031500Z     2026-11-30T10:00:00Z  20261130T031  -",
        "* a1b2c3d4e5f6         2026-11-30T10:00:00Z  a1b2c3d4e5f6  0002",
    ]
    doc = runner.invoke(cli, ["--host", "unix:///var/run/docker.sock", "releases", "--json"])
    assert [(r["id"], r["migration"], r["current"]) for r in json.loads(doc.stdout)] == [
        ("20261130T031500Z", None, False),
        ("a1b2c3d4e5f6", "0002", True),
    ]


# --rollback-on-error: the database stays migrated --------------------------------------------------------------


class Previous:
    """The engine after a switch whose probes failed: the previous release r1 was recorded at ``migration``."""

    def __init__(self, migration: str | None) -> None:
        self.migration = migration
        self.calls: list[Any] = []

    def exec(self, name: str, argv: list[str]) -> str:
        return json.dumps(
            [{"id": "r1", "image": "sha256:old", "created": "2026-11-29T10:00:00Z", "config_hash": "h"}]
            if self.migration is None
            else [
                {
                    "id": "r1",
                    "image": "sha256:old",
                    "created": "2026-11-29T10:00:00Z",
                    "config_hash": "h",
                    "migration": self.migration,
                }
            ]
        )

    def containers(self) -> list[ContainerInfo]:
        return [ContainerInfo("id", "shop-routes-1", "routes", "running", None, None, 0, None, None, 1, "sha256:py")]

    def tag(self, image: str, tag: str) -> None:
        self.calls.append(("tag", image, tag))


FAILED = ProbeReport(sent=40, failed=1, slowest_ms=90.0, failures=["HTTP 500"])


@pytest.mark.parametrize(
    ("previous", "new", "stays"),
    [
        (
            "0001",
            "0002",
            "; the database stays at the new migration state 0002 (release r1 was deployed at 0001): switching back "
            "does not reverse the migration",
        ),
        ("0002", "0002", ""),  # the migration changed nothing
        (None, "0002", ""),  # unknown: nothing to say it changed
    ],
)
def test_rollback_on_error_says_the_database_stays_at_the_new_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, previous: str | None, new: str, stays: str
) -> None:
    back = SwitchResult("r1", ["shop-app-3"], True, 3.0)
    monkeypatch.setattr(composekit.deploy.self_check, "switch_app", lambda project, docker, deadline, release, *a: back)
    said: list[str] = []
    switched = SwitchResult("r2", ["shop-app-2"], True, 3.2, "h2", FAILED, "sha256:old")
    with pytest.raises(SelfCheckError) as caught:
        composekit.deploy.self_check.self_check(
            project(tmp_path),
            Previous(previous),  # type: ignore[arg-type]
            Deadline(60),
            switched,
            said.append,
            None,
            True,
            new,
        )
    assert said[-1] == f"switching back to the previous release (--rollback-on-error){stays}"
    assert str(caught.value).endswith(f"switched back to release r1 (shop-app-3) because of --rollback-on-error{stays}")


def test_a_failed_self_check_without_the_flag_records_the_new_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        composekit.deploy.self_check,
        "record_release",
        lambda project, docker, release, h, migration=None: recorded.append((release, migration)),
    )
    switched = SwitchResult("r2", ["shop-app-2"], True, 3.2, "h2", FAILED, "sha256:old")
    with pytest.raises(SelfCheckError):
        composekit.deploy.self_check.self_check(
            project(tmp_path),
            Previous("0001"),  # type: ignore[arg-type]
            Deadline(60),
            switched,
            lambda _: None,
            None,
            False,
            "0002",
        )
    assert recorded == [("r2", "0002")]
