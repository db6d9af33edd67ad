"""The rendered stack's safety, for real: values reach containers literally, env files stay out of the
image, logs rotate, and the app runs confined (read-only root, no capabilities) while still serving HTTPS.

One deployment of the example app (module-scoped) carries every probe: a `$` in an environment value and in
the migration's command, an env file in a subdirectory, and a migration that floods its log before it runs.
"""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from .conftest import REPO, Stack

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "stacks" / "fastapi"
GREETING = "price is ${HOME}"
LOG_MAX_SIZE = 1024 * 1024
LOG_MAX_FILE = 2
FLOOD_LINES, FLOOD_WIDTH = 100_000, 200  # ~20 MB of output, ~10x the rotation bound
FLOOD = (
    "import sys\n"
    f"line = 'x' * {FLOOD_WIDTH}\n"
    f"for i in range({FLOOD_LINES}):\n"
    "    sys.stdout.write(f'flood {i} {line}\\n')\n"
)
# Not interpolated by the shell that deploys: echoed by the container's own shell.
MIGRATE = ["sh", "-c", f'python3 -c "{FLOOD}" && echo "container PATH is $PATH" && exec python3 -m app.migrate']
MARKERS = {name: f"planted-{uuid.uuid4().hex}" for name in ("env_file", "dot_env", "dot_env_local", "x_env", "control")}


@pytest.fixture(scope="module")
def hardened(make_stack: Any) -> Stack:
    stack: Stack = make_stack(
        EXAMPLE,
        "hardening",
        app={"environment": {"GREETING": GREETING}, "env_file": "config/prod.env"},
        migrate={"command": MIGRATE},
        logging={"max_size": "1m", "max_file": LOG_MAX_FILE},
    )
    planted = {
        "config/prod.env": f"PLANTED_TOKEN={MARKERS['env_file']}\n",
        "sub/.env": f"X={MARKERS['dot_env']}\n",
        "sub/.env.local": f"X={MARKERS['dot_env_local']}\n",
        "sub/x.env": f"X={MARKERS['x_env']}\n",
        # Not a secret: proves the layer search finds a file that was copied.
        "app/control_marker.txt": MARKERS["control"] + "\n",
    }
    for rel, content in planted.items():
        (stack.dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (stack.dir / rel).write_text(content)
    stack.ck("up", timeout=600)
    return stack


def _inspect(stack: Stack, service: str) -> Any:
    return stack.docker.container.inspect(stack.containers()[service].id)


def _exec(stack: Stack, service: str, argv: list[str]) -> str:
    out = stack.docker.container.execute(stack.containers()[service], argv)
    assert isinstance(out, str)
    return out


def test_stack_serves_https_with_all_the_hardening(hardened: Stack) -> None:
    response = hardened.wait_https("/")
    assert response.status_code == 200
    assert response.json()["app"] == "shop"


def test_environment_value_reaches_the_container_literally(hardened: Stack) -> None:
    assert f"GREETING={GREETING}" in _inspect(hardened, "app").config.env
    assert _exec(hardened, "app", ["printenv", "GREETING"]).strip() == GREETING
    # The env file's value is there at run time (it is the app's configuration), just not in the image.
    assert _exec(hardened, "app", ["printenv", "PLANTED_TOKEN"]).strip() == MARKERS["env_file"]


def test_migration_command_is_run_as_written(hardened: Stack) -> None:
    migrate = _inspect(hardened, "migrate")
    assert migrate.config.cmd == MIGRATE  # "$PATH" kept, not replaced by the deploying shell's PATH
    container_path = next(e.split("=", 1)[1] for e in migrate.config.env if e.startswith("PATH="))
    logs = hardened.docker.container.logs(migrate.id, tail=5)
    assert f"container PATH is {container_path}\n" in logs


def test_env_files_are_in_no_image_layer(hardened: Stack, tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    hardened.docker.image.save(f"{hardened.name}-app:latest", output=archive)
    found: dict[str, list[str]] = {name: [] for name in MARKERS}
    with tarfile.open(archive) as outer:
        members = [m for m in outer.getmembers() if m.isfile()]
        assert any(m.name.endswith("layer.tar") for m in members)
        for member in members:  # every layer tar, the image config and the manifest
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            for name, marker in MARKERS.items():
                if marker.encode() in data:
                    found[name].append(member.name)
    assert found["control"], "the search found no copied file: it proves nothing"
    assert {name: where for name, where in found.items() if where and name != "control"} == {}


def test_logs_rotate_within_the_configured_bound(hardened: Stack) -> None:
    for service in ("traefik", "migrate", "app"):
        log_config = _inspect(hardened, service).host_config.log_config
        assert log_config.type == "json-file"
        assert log_config.config == {"max-size": "1m", "max-file": str(LOG_MAX_FILE)}
    log_path = Path(_inspect(hardened, "migrate").log_path)
    files = sorted(log_path.parent.glob(log_path.name + "*"))
    total = sum(f.stat().st_size for f in files)
    written = FLOOD_LINES * (FLOOD_WIDTH + 12)
    print(f"log rotation: ~{written} bytes written by the migration, {total} kept in {len(files)} files")
    assert len(files) == LOG_MAX_FILE, [f.name for f in files]  # it rotated, and kept no more than allowed
    assert total <= LOG_MAX_SIZE * LOG_MAX_FILE + 64 * 1024, (total, written)


def test_app_root_filesystem_is_read_only(hardened: Stack) -> None:
    with pytest.raises(DockerException) as info:
        _exec(hardened, "app", ["sh", "-c", "echo x > /app/probe"])
    assert "Read-only file system" in str(info.value)
    _exec(hardened, "app", ["sh", "-c", "echo x > /tmp/probe && echo x > /data/probe"])
    assert _inspect(hardened, "migrate").host_config.readonly_rootfs is True


def test_app_and_traefik_capabilities(hardened: Stack) -> None:
    def cap_eff(service: str) -> str:
        status = _exec(hardened, service, ["cat", "/proc/1/status"])
        return next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))

    assert cap_eff("app") == "0000000000000000"
    assert cap_eff("traefik") == f"{1 << 10:016x}"  # CAP_NET_BIND_SERVICE only
    assert _inspect(hardened, "migrate").host_config.cap_drop == ["ALL"]


def test_traefik_still_binds_80_and_443_and_writes_its_certificate_store(hardened: Stack) -> None:
    hardened.wait_https("/")
    assert hardened.http("/").status_code in (301, 308)  # :80 answers (and served the HTTP-01 challenge)
    mode_size = _exec(hardened, "traefik", ["stat", "-c", "%a %s", "/acme/acme.json"]).split()
    assert mode_size[0] == "600" and int(mode_size[1]) > 0
    assert hardened.domain in _exec(hardened, "traefik", ["cat", "/acme/acme.json"])


def test_process_count_is_limited(hardened: Stack) -> None:
    assert _inspect(hardened, "app").host_config.pids_limit == 4096
    assert _inspect(hardened, "migrate").host_config.pids_limit == 4096
    read_limit = "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"  # cgroup v2, v1
    limit = _exec(hardened, "app", ["sh", "-c", read_limit])
    assert limit.strip() == "4096"
