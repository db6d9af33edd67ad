"""The `ssh_config` fixture: the test environment's own OpenSSH server (scripts/sshd.sh) on a loopback port,
key-only, its host key checked, in front of this machine: the "server" of the remote-engine tests.

Use it from a test module with `from .sshd import ALIAS, ssh_config  # noqa: F401`. It starts sshd (idempotent),
sets COMPOSEKIT_SSH_CONFIG (the ssh config with the Host alias composekit-test) and unsets DOCKER_HOST for the rest
of the module, and yields the ssh config's path. Without sshd it fails under CI and skips otherwise, saying why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

ALIAS = "ssh://composekit-test"


def _sshd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "sshd.sh"), *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def ssh_config() -> Iterator[Path]:
    started = _sshd("start")
    if started.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/sshd.sh start failed: {started.stderr}", pytrace=False)
        pytest.skip(f"no test sshd: {started.stderr.strip()[-300:]} (apt-get install openssh-server)")
    env = dict(line.split("=", 1) for line in _sshd("env").stdout.splitlines() if "=" in line)
    path = Path(env["COMPOSEKIT_SSH_CONFIG"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPOSEKIT_SSH_CONFIG", str(path))
        mp.delenv("DOCKER_HOST", raising=False)
        yield path
