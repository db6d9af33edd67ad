"""Docker failures become composekit errors that say what was run and what Docker answered."""

from __future__ import annotations

from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from composekit.engine.docker import Docker
from composekit.errors import BuildError, DockerError


def failing(command: list[str], stderr: bytes):  # type: ignore[no-untyped-def]
    def fn() -> None:
        raise DockerException(command, 1, stdout=b"", stderr=stderr)

    return fn


def test_failure_names_the_command_docker_answer_and_fix() -> None:
    docker = Docker("shop", [Path("/nowhere/compose.yaml")])
    with pytest.raises(DockerError) as info:
        docker._call(
            "cannot reach the Docker engine",
            failing(["docker", "version"], b"Cannot connect to the Docker daemon"),
            "start it",
        )
    assert str(info.value) == (
        "cannot reach the Docker engine\n"
        "  command: docker version\n"
        "  docker said:\n"
        "    Cannot connect to the Docker daemon\n"
        "  fix: start it"
    )


def test_streamed_failure_keeps_the_output_tail_and_error_type() -> None:
    docker = Docker("shop", [Path("/nowhere/compose.yaml")])

    def stream():  # type: ignore[no-untyped-def]
        yield "stdout", b"#5 [build 3/4] RUN pip install -r requirements.txt\n"
        yield "stderr", b"ERROR: No matching distribution found for fastapi==0.0.0\n"
        raise DockerException(["docker", "compose", "build"], 1, stderr=b"")

    seen: list[str] = []
    with pytest.raises(BuildError) as info:
        docker._stream("the app image failed to build", stream, seen.append, "read the build output", BuildError)
    assert seen == [
        "#5 [build 3/4] RUN pip install -r requirements.txt",
        "ERROR: No matching distribution found for fastapi==0.0.0",
    ]
    assert info.value.command == ["docker", "compose", "build"]
    assert "No matching distribution found for fastapi==0.0.0" in str(info.value)
    assert str(info.value).endswith("  fix: read the build output")


def fake_docker(tmp_path: Path, cases: str, before: str = "") -> Docker:
    """A Docker whose `docker` is a shell script answering the arguments by ``cases`` (a `case "$*"` body; anything
    else exits 2), after running ``before``."""
    fake = tmp_path / "docker"
    fake.write_text(
        f'#!/bin/sh\n{before}case "$*" in\n{cases}  *) echo "unexpected: $*" >&2; exit 2;;\nesac\n', encoding="utf-8"
    )
    fake.chmod(0o755)
    docker = Docker("shop", [tmp_path / "compose.yaml"])
    docker.client = DockerClient(client_call=[str(fake)])
    return docker


def test_final_logs_kill_first_and_read_until_the_engine_has_copied_the_last_lines(tmp_path: Path) -> None:
    """A crash-looping container given up on: the error its last run printed reaches the engine's log a moment
    after the restart was counted (seen under load). final_logs kills it, then reads until two reads agree."""
    calls = tmp_path / "calls"
    # python-on-whales inspects a container before reading its logs (is it a TTY?).
    # `docker logs` answers the start of a run the first time, the whole run from the second time on.
    docker = fake_docker(
        tmp_path,
        """  *" inspect "*) echo '[{"Id": "c1", "Config": {"Tty": false}}]';;\n"""
        f'  *" logs "*) if [ "$(grep -c " logs " {calls})" -lt 2 ]; then echo "Booting worker"; '
        'else printf "Booting worker\\nFailed to find attribute\\n"; fi;;\n'
        '  *" kill "*) echo "Error response from daemon: container is restarting" >&2; exit 1;;\n',
        before=f'echo "$*" >> {calls}\n',
    )
    slept: list[float] = []
    logs = docker.final_logs("shop-app-1", 30, sleep=slept.append)
    assert logs == "Booting worker\nFailed to find attribute\n"
    asked = calls.read_text(encoding="utf-8").splitlines()
    assert asked[0] == "container kill shop-app-1"  # refused (restarting): read anyway
    assert [a for a in asked if " logs " in a] == ["container logs --tail 30 shop-app-1"] * 3
    assert slept == [0.3, 0.3]


def test_a_container_removed_between_the_list_and_its_inspect_is_left_out(tmp_path: Path) -> None:
    """CI: an `up` read the shared edge's containers while another app's deploy replaced one; its inspect answered
    `No such container` and the `up` ended in a traceback. A container gone since the list is no longer one of them."""
    docker = fake_docker(
        tmp_path,
        '  *"container list"*) printf "c1\\nc2\\n";;\n'
        # One inspect of both: the engine prints the one it found and exits 1 naming the other.
        """  *"container inspect c1 c2") echo '[{"Id": "c1", "Name": "/shop-app-1", "RestartCount": 0,
          "Image": "sha256:1", "Config": {"Labels": {"com.docker.compose.service": "app"}},
          "State": {"Status": "running", "ExitCode": 0, "Pid": 42}}]'
          echo "Error response from daemon: No such container: c2" >&2; exit 1;;\n""",
    )
    found = docker.containers()
    assert [(c.id, c.name, c.service, c.status, c.pid) for c in found] == [("c1", "shop-app-1", "app", "running", 42)]


def test_an_image_removed_between_the_list_and_its_inspect_is_left_out(tmp_path: Path) -> None:
    """The layers the target engine has, read before shipping an image: one pruned meanwhile is not among them
    (before, its `No such image` failed the ship)."""
    docker = fake_docker(
        tmp_path,
        '  *"image list"*) printf "sha256:1\\nsha256:2\\n";;\n'
        # One inspect of both (in either order): the engine prints the one it found and exits 1 naming the other.
        """  *"image inspect sha256:"[12]" sha256:"[12]) echo '[{"Id": "sha256:1",
          "RootFS": {"Type": "layers", "Layers": ["l1", "l2"]}}]'
          echo "Error response from daemon: No such image: sha256:2" >&2; exit 1;;\n""",
    )
    assert docker.all_image_layers() == [["l1", "l2"]]
