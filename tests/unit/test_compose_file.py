"""init's reading of a repository's own Compose file (scaffold/compose_file.py): suggested processes, and notes for
its PostgreSQL and Redis services. Nothing of it is enabled."""

from __future__ import annotations

from pathlib import Path

import yaml

from composekit.config import parse_config
from composekit.scaffold import plan_init
from composekit.scaffold.compose_file import read_compose_hints

# igorbenav/FastAPI-boilerplate's docker-compose.yml, shortened.
BOILERPLATE = """\
services:
  web:
    build: {context: ., dockerfile: Dockerfile}
    command: uvicorn app.main:app --host 0.0.0.0 --port 8000 --reload
  worker:
    build: {context: ., dockerfile: Dockerfile}
    command: arq app.core.worker.settings.WorkerSettings
  Celery_Beat:
    build: .
    command: [celery, -A, app.tasks, beat]
  migrate:
    build: .
    command: sh -c "alembic upgrade head"
  db:
    image: postgres:13
  redis:
    image: redis:alpine
  cache:
    image: docker.io/library/valkey/valkey:8
"""


def test_workers_become_suggested_processes_and_databases_notes(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(BOILERPLATE)
    hints = read_compose_hints(tmp_path)
    assert hints.file == "docker-compose.yml"
    # The web server and the migration are composekit's own; a name that is not a DNS label is made one.
    assert hints.processes == {
        "worker": "arq app.core.worker.settings.WorkerSettings",
        "celery-beat": "celery -A app.tasks beat",
    }
    assert any("service db runs PostgreSQL: `composekit init --template fastapi-postgres`" in n for n in hints.notes)
    assert any("service redis runs Redis: add it under accessories: (redis: {kind: redis" in n for n in hints.notes)
    assert any("service cache runs Redis" in n for n in hints.notes)
    assert read_compose_hints(tmp_path, database=True).notes[0].startswith("docker-compose.yml: service redis")


def test_no_compose_file_or_an_unreadable_one_gives_nothing_to_enable(tmp_path: Path) -> None:
    assert read_compose_hints(tmp_path).processes == {}
    (tmp_path / "compose.yaml").write_text("services: [unclosed\n")
    hints = read_compose_hints(tmp_path)
    assert hints.processes == {} and hints.notes == ["compose.yaml is not readable YAML: nothing taken from it"]


def test_init_writes_them_commented_out_and_they_are_valid_once_uncommented(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "docker-compose.yml").write_text(BOILERPLATE)
    plan = plan_init(tmp_path, module="app.main:app")
    text = next(f.content for f in plan.files if f.path == "composekit.yaml").decode()
    assert "processes" not in yaml.safe_load(text)  # nothing enabled
    assert "#   worker: arq app.core.worker.settings.WorkerSettings" in text
    uncommented = text.replace("# processes:", "processes:").replace("#   worker:", "  worker:")
    uncommented = uncommented.replace("#   celery-beat:", "  celery-beat:")
    config = parse_config(yaml.safe_load(uncommented))
    assert config.processes["worker"].command == "arq app.core.worker.settings.WorkerSettings"
    assert config.processes["celery-beat"].command == "celery -A app.tasks beat"
