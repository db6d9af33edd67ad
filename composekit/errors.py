"""The exceptions composekit raises.

    ComposekitError                 base of everything below
    └── UserError                   printed as-is by the CLI (exit 1), no traceback
        ├── ConfigError             composekit.yaml is missing, unreadable or invalid (all problems at once)
        ├── DockerError             a Docker / Compose command failed: carries the command and its stderr
        │   ├── BuildError          the app image did not build
        │   └── MigrationError      the one-shot migration service exited non-zero
        ├── ImageError              the app image lacks what composekit runs in it (gunicorn, the app's package, ...)
        ├── PortInUseError          a host port Traefik needs is held by another process
        ├── HealthTimeoutError      a service did not turn healthy before the deadline
        ├── HttpCheckError          a request composekit made failed at the transport level
        ├── SshError                the SSH connection to a remote engine failed (host key, key, network)
        └── TemplateError           init / templates: refused overwrite, unknown template, ...

Anything that is not a UserError is a bug in composekit and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BuildError",
    "ComposekitError",
    "ConfigError",
    "DockerError",
    "HealthTimeoutError",
    "HttpCheckError",
    "ImageError",
    "MigrationError",
    "PortInUseError",
    "SshError",
    "TemplateError",
    "UserError",
]


class ComposekitError(Exception):
    """Base class of every composekit exception."""


class UserError(ComposekitError):
    """An error whose message is written for the user: it names the problem and the fix.

    ``engine`` names the Docker engine the command used, when it used one (the CLI prints it)."""

    engine: str | None = None


class ConfigError(UserError):
    """The configuration is invalid; ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DockerError(UserError):
    """A Docker command failed. The message says what was run and what Docker answered."""

    def __init__(
        self, summary: str, command: Sequence[str] = (), stderr: str = "", hint: str = "", engine: str | None = None
    ) -> None:
        self.summary = summary
        self.command = list(command)
        self.stderr = stderr.strip()
        self.hint = hint
        self.engine = engine
        lines = [summary]
        if engine:
            lines.append(f"  engine: {engine}")
        if self.command:
            lines.append(f"  command: {' '.join(self.command)}")
        if self.stderr:
            lines.append("  docker said:")
            lines.extend(f"    {line}" for line in self.stderr.splitlines()[-25:])
        if hint:
            lines.append(f"  fix: {hint}")
        super().__init__("\n".join(lines))


class BuildError(DockerError):
    """The app image failed to build."""


class MigrationError(DockerError):
    """The migration service exited non-zero; the app was not (re)started."""


class ImageError(UserError):
    """The app image, just built, lacks what composekit runs in it; nothing of the stack was started or changed."""


class PortInUseError(UserError):
    """A host port that Traefik must publish is taken by something else."""


class HealthTimeoutError(UserError):
    """A service did not become healthy in time; the message has its last status and log tail."""


class SelfCheckError(UserError):
    """Probes through the real proxy failed during a switch."""


class LockedError(UserError):
    """Another deploy of the same stack holds the engine-side deploy lock."""


class HttpCheckError(UserError):
    """An HTTP request made by composekit could not be completed."""


class SshError(UserError):
    """composekit could not reach a remote engine over SSH; the message is one line with the fix."""


class TemplateError(UserError):
    """A scaffolding or template operation was refused."""
