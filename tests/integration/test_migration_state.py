"""Migration state per release and the rollback guard, on the real engine, Traefik, Pebble and PostgreSQL.

The fastapi-postgres template, made to migrate with Alembic in this copy (`alembic upgrade head`, revision 0001
creating what its own migration creates): release A at 0001, then a new revision file (0002) and release B.
Each release records the revision `alembic current` reports after its migration; a rollback from B to A is
refused without --yes (B keeps serving, same container), refused even with --yes when migrate/backward_compatible
is false, and with --yes switches to A's image. Then release C migrates to 0003 and never starts: a rollback to B
(recorded at 0002) is refused, from the record of the last migration. One stack, three deploys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO, Stack, TestEnv

pytestmark = pytest.mark.integration

TEMPLATE = REPO / "stacks" / "fastapi-postgres"
NAME = "ms-alembic"

ALEMBIC_INI = """[alembic]
script_location = migrations
prepend_sys_path = .

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

ENV_PY = '''"""Alembic environment: the database from the variables composekit sets, the password from its file."""

import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name)

url = URL.create(
    "postgresql+psycopg",
    username=os.environ["DATABASE_USER"],
    password=Path(os.environ["DATABASE_PASSWORD_FILE"]).read_text().strip(),
    host=os.environ["DATABASE_HOST"],
    port=int(os.environ["DATABASE_PORT"]),
    database=os.environ["DATABASE_NAME"],
)
with create_engine(url).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
'''

REVISION_0001 = '''"""What app/migrate.py creates (the app reads schema_migrations at startup)."""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    op.execute(
        "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL, "
        "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    op.execute("INSERT INTO schema_migrations (version) VALUES (1)")


def downgrade() -> None:
    op.execute("DROP TABLE notes")
    op.execute("DROP TABLE schema_migrations")
'''

REVISION_0002 = '''"""A nullable column: release A's code still runs on it."""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE notes ADD COLUMN tag TEXT")


def downgrade() -> None:
    op.execute("ALTER TABLE notes DROP COLUMN tag")
'''


@pytest.fixture(scope="module")
def stack(make_stack: Any, testenv: TestEnv) -> Stack:
    s: Stack = make_stack(
        TEMPLATE, NAME, images={"postgres": testenv.postgres_image}, migrate={"command": "alembic upgrade head"}
    )
    for image in s.docker.image.list(f"{NAME}-app"):  # release tags of earlier runs (test images, this project's)
        for tag in image.repo_tags:
            s.docker.image.remove(tag)
    (s.dir / "secrets").mkdir()
    (s.dir / "secrets" / "db_password").write_text("ms-test-password\n")
    with (s.dir / "requirements.txt").open("a") as f:
        f.write("alembic>=1.13\nsqlalchemy>=2.0\n")
    (s.dir / "alembic.ini").write_text(ALEMBIC_INI)
    (s.dir / "migrations" / "versions").mkdir(parents=True)
    (s.dir / "migrations" / "env.py").write_text(ENV_PY)
    (s.dir / "migrations" / "versions" / "0001_notes.py").write_text(REVISION_0001)
    done = s.ck("up", "--no-smoke", timeout=900)
    assert "migration state: 0001" in done.stderr, done.stderr[-3000:]
    s.wait_https("/")
    return s


def releases(stack: Stack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(stack.ck("releases", "--json").stdout)
    return rows


def serving(stack: Stack) -> tuple[str, str]:
    """The running app container's id and image id."""
    apps = stack.docker.container.list(filters=[("label", f"com.docker.compose.project={stack.name}")])
    found = [c for c in apps if (c.config.labels or {}).get("com.docker.compose.service") == "app"]
    assert len(found) == 1, [c.name for c in found]
    return found[0].id, str(found[0].image)


def test_each_release_records_the_alembic_revision_its_migration_left(stack: Stack) -> None:
    first = releases(stack)
    assert [(r["migration"], r["current"]) for r in first] == [("0001", True)]
    (stack.dir / "migrations" / "versions" / "0002_tag.py").write_text(REVISION_0002)
    done = stack.ck("up", "--no-smoke", timeout=600)
    assert "reading the migration state (`alembic current`)" in done.stderr
    assert "migration state: 0002" in done.stderr
    rows = releases(stack)
    assert [(r["id"], r["migration"], r["current"]) for r in rows] == [
        (first[0]["id"], "0001", False),
        (rows[1]["id"], "0002", True),
    ]
    assert rows[0]["image"] != rows[1]["image"]
    table = stack.ck("releases").stdout.splitlines()
    assert [line.split()[-1] for line in table] == ["0001", "0002"]
    assert table[1].startswith("* ")
    assert stack.https("/").status_code == 200
    # No one-off container of the state read is left behind. (Asked by name: listing every container and reading
    # each one's name raced the other lanes, whose containers can go between the list and the inspect.)
    assert not stack.docker.container.exists(f"{NAME}-migrate-state")


def refused_message(a: str, b: str) -> str:
    # The database's state: the one the last migration composekit ran left (migration.json in the routes volume).
    return (
        f"the database was migrated since release {a}: it is at migration state 0002 (left by the last migration, "
        f"release {b}'s), release {a} was deployed at 0001"
    )


def test_a_rollback_across_a_migration_is_refused_without_yes(stack: Stack) -> None:
    a, b = (r["id"] for r in releases(stack))
    before = serving(stack)
    done = stack.ck("rollback", check=False, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert (
        f"{refused_message(a, b)}. A rollback does not reverse migrations: release {a}'s code would run on the "
        f"database at 0002. Run `composekit rollback {a} --yes` if it works with that state "
        "(migrate/backward_compatible: true says it should)"
    ) in " ".join(done.stderr.split())
    assert serving(stack) == before
    assert stack.https("/").status_code == 200


def test_backward_incompatible_migrations_refuse_the_rollback_even_with_yes(stack: Stack, tmp_path: Path) -> None:
    a, b = (r["id"] for r in releases(stack))
    strict = tmp_path / "incompatible.yaml"
    strict.write_text(yaml.safe_dump({"migrate": {"backward_compatible": False}}))
    before = serving(stack)
    done = stack.ck("rollback", "--yes", check=False, timeout=300, extra_config=(str(strict),))
    assert done.returncode == 1, done.stderr[-3000:]
    assert (
        f"{refused_message(a, b)}, and migrate/backward_compatible is false: release {a}'s code does not run on a "
        "database migrated since, so the rollback is refused, even with --yes."
    ) in " ".join(done.stderr.split())
    assert serving(stack) == before


def test_a_rollback_with_yes_switches_to_the_older_image_and_says_the_database_stays(stack: Stack) -> None:
    rows = releases(stack)
    a, b = rows[0]["id"], rows[1]["id"]
    done = stack.ck("rollback", "--yes", timeout=300)
    assert (
        f"warning: the database stays at migration state 0002 (left by the last migration, release {b}'s); release "
        f"{a} was deployed at 0001 (--yes)"
    ) in " ".join(done.stderr.split())
    assert serving(stack)[1] == rows[0]["image"]
    assert [r["current"] for r in releases(stack)] == [True, False]
    answer = stack.https("/")
    assert answer.status_code == 200 and answer.json()["schema_version"] == 1


REVISION_0003 = (
    REVISION_0002.replace('revision = "0002"', 'revision = "0003"')
    .replace('down_revision = "0001"', 'down_revision = "0002"')
    .replace("tag TEXT", "flag BOOLEAN")
    .replace("COLUMN tag", "COLUMN flag")
)


def test_a_deploy_that_migrated_but_never_went_live_still_guards_the_rollback(stack: Stack) -> None:
    """Release C migrates the database to 0003, then never starts: `up` fails, A keeps serving, and C is in no
    release record. Rolling "back" to B (recorded at 0002, the newest record) must not pass as a same-state switch:
    the record of the last migration (C's, 0003) makes rollback refuse without --yes."""
    rows = releases(stack)
    a, b = rows[0]["id"], rows[1]["id"]
    assert [r["current"] for r in rows] == [True, False]  # A serves (the previous test rolled back to it)
    (stack.dir / "migrations" / "versions" / "0003_flag.py").write_text(REVISION_0003)
    main = stack.dir / "app" / "main.py"
    code = main.read_text()
    main.write_text(code + '\nraise RuntimeError("release C does not start")\n')
    before = serving(stack)
    try:
        failed = stack.ck("up", "--no-smoke", check=False, timeout=600)
    finally:
        main.write_text(code)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "migration state: 0003" in failed.stderr
    built = re.search(r"building the app image \(release (\S+)\)", failed.stderr)
    assert built is not None, failed.stderr[-3000:]
    c = built.group(1)
    assert serving(stack) == before and [r["id"] for r in releases(stack)] == [a, b]
    refused = stack.ck("rollback", b, check=False, timeout=300)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert (
        f"the database was migrated since release {b}: it is at migration state 0003 (left by the last migration, "
        f"release {c}'s), release {b} was deployed at 0002. A rollback does not reverse migrations"
    ) in " ".join(refused.stderr.split())
    assert serving(stack) == before
    assert stack.https("/").status_code == 200
