"""The `ssh_config` fixture: the test environment's own OpenSSH server (scripts/sshd.sh) on a loopback port,
key-only, its host key checked, in front of this machine: the "server" of the remote-engine tests.

Use it from a test module with `from .sshd import ALIAS, ssh_config  # noqa: F401`. It starts sshd (idempotent),
sets COMPOSEKIT_SSH_CONFIG (the ssh config with the Host alias composekit-test) and unsets DOCKER_HOST for the rest
of the module, and yields the ssh config's path. Without sshd it fails under CI and skips otherwise, saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import start_env_server

ALIAS = "ssh://composekit-test"


@pytest.fixture(scope="module")
def ssh_config() -> Iterator[Path]:
    env = start_env_server("sshd.sh", "sshd", "apt-get install openssh-server")
    path = Path(env["COMPOSEKIT_SSH_CONFIG"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPOSEKIT_SSH_CONFIG", str(path))
        mp.delenv("DOCKER_HOST", raising=False)
        yield path
