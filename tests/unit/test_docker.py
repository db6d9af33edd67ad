"""Docker failures become composekit errors that say what was run and what Docker answered."""

from __future__ import annotations

from pathlib import Path

import pytest
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
