"""Raw JSON of the engine's Swarm objects (services, tasks, nodes, networks) and `docker stack` / `docker service`
commands: engine/swarm/parse.py reads the JSON, and tests/unit/test_swarm_recorded.py feeds it JSON recorded from a
real Swarm."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run as run_command

from ..errors import DockerError
from .docker_cli import DockerCLI, _as_text

__all__ = ["SWARM_HINT", "SwarmCommands"]

SWARM_HINT = (
    "mode: swarm drives a Swarm manager: check `docker info` there says Swarm: active and Is Manager: true "
    "(`docker swarm init` makes one)"
)

# How often a list-then-inspect is tried when an object listed is gone by the time it is inspected (_listed).
LIST_ATTEMPTS = 3


def _only_gone(said: str) -> bool:
    """Whether every error Docker printed says an object does not exist ("task ... not found", "No such ...")."""
    lines = [line.lower() for line in said.splitlines() if line.strip()]
    return bool(lines) and all("not found" in line or "no such" in line for line in lines)


class SwarmCommands(DockerCLI):
    """A Swarm manager's services, tasks, nodes and networks, as the engine's JSON."""

    def _docker(
        self, summary: str, args: list[str], hint: str = SWARM_HINT, env: Mapping[str, str] | None = None
    ) -> str:
        command = [*self.client.client_config.docker_cmd, *args]
        return self._call(summary, lambda: str(run_command(command, env=dict(env or {}))), hint)

    def _inspect(self, summary: str, kind: list[str], ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        found = json.loads(self._docker(summary, [*kind, *ids]) or "[]")
        return [dict(item) for item in found]

    def stack_deploy(self, stack: str, file: Path, variables: Mapping[str, str], registry_auth: bool = False) -> str:
        """`docker stack deploy -c FILE STACK --resolve-image never` with ``variables`` in its environment (the
        stack file's ${...}); Swarm applies it in the background. Returns what the CLI printed. With
        ``registry_auth`` (images pulled from a registry), `--with-registry-auth` hands this client's login for it
        to the nodes, which pull with it; without, a node cannot pull from a registry that asks for a login."""
        auth = ["--with-registry-auth"] if registry_auth else []
        return self._docker(
            f"`docker stack deploy` of {file.name} into stack {stack} failed",
            ["stack", "deploy", "--compose-file", str(file), "--resolve-image", "never", *auth, stack],
            "read what Docker said above; `composekit render --check` shows whether the rendered stack is current",
            env=variables,
        )

    def stack_remove(self, stack: str) -> None:
        self._docker(f"`docker stack rm {stack}` failed", ["stack", "rm", stack])

    def _listed(self, what: str, list_args: list[str], inspect_args: list[str]) -> list[dict[str, Any]]:
        """Inspect every object a list command names. One removed between the two calls (Swarm prunes a service's
        old tasks as new ones start; a job service is removed) fails the inspect with "not found": list again, up
        to LIST_ATTEMPTS times."""
        for attempt in range(1, LIST_ATTEMPTS + 1):
            ids = self._docker(f"cannot list {what}", list_args).split()
            try:
                return self._inspect(f"cannot inspect {what}", inspect_args, ids)
            except DockerError as exc:
                if attempt == LIST_ATTEMPTS or not _only_gone(exc.stderr):
                    raise
        raise AssertionError("unreachable")

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        """`docker service inspect` of every service of ``stack`` (label com.docker.stack.namespace)."""
        return self._listed(
            f"the services of stack {stack}",
            ["service", "ls", "--quiet", "--filter", f"label=com.docker.stack.namespace={stack}"],
            ["service", "inspect"],
        )

    def service_inspect(self, service: str) -> dict[str, Any] | None:
        """`docker service inspect SERVICE`, or None when there is no such service."""
        try:
            found = self._inspect(f"cannot inspect service {service}", ["service", "inspect"], [service])
        except DockerError as exc:
            if "no such service" in exc.stderr.lower():
                return None
            raise
        return found[0] if found else None

    def service_tasks(self, service: str) -> list[dict[str, Any]]:
        """`docker inspect` of every task of ``service`` Swarm still keeps (the current ones and some history)."""
        return self._listed(
            f"the tasks of {service}",
            ["service", "ps", "--quiet", "--no-trunc", service],
            ["inspect", "--type", "task"],
        )

    def service_remove(self, service: str) -> None:
        self._docker(f"cannot remove service {service}", ["service", "rm", service])

    def service_logs(self, service: str, tail: int | None = None) -> str:
        args = ["service", "logs", "--no-task-ids", *(["--tail", str(tail)] if tail else []), service]
        out, err = self._call(
            f"cannot read the logs of {service}",
            lambda: run_command([*self.client.client_config.docker_cmd, *args], return_stderr=True),
            SWARM_HINT,
        )
        return "\n".join(part for part in (out, err) if part)

    def follow_service_logs(self, services: list[str], tail: int | None, follow: bool) -> Iterator[str]:
        """The logs of ``services`` one after the other (`docker service logs` takes one service at a time);
        with ``follow`` only the first one's, followed."""
        for service in services[:1] if follow else services:
            try:
                for _source, raw in self.client.service.logs(
                    service, tail=tail, follow=follow, stream=True, task_ids=False
                ):
                    yield _as_text(raw).rstrip("\n")
            except DockerException as exc:
                raise DockerError(
                    f"cannot read the logs of {service}", exc.docker_command, _as_text(exc.stderr)
                ) from None

    def nodes(self) -> list[dict[str, Any]]:
        """`docker node inspect` of every node of the Swarm (answered by a manager only)."""
        return self._listed("the Swarm's nodes", ["node", "ls", "--quiet"], ["node", "inspect"])

    def stack_networks(self, stack: str) -> list[dict[str, Any]]:
        """`docker network inspect` of the stack's networks; one removed meanwhile (by `docker stack rm`) is left
        out."""
        ids = self._docker(
            f"cannot list the networks of stack {stack}",
            ["network", "ls", "--quiet", "--filter", f"label=com.docker.stack.namespace={stack}"],
        ).split()
        found: list[dict[str, Any]] = []
        for network in ids:
            try:
                found += self._inspect(f"cannot inspect network {network}", ["network", "inspect"], [network])
            except DockerError as exc:
                if "not found" not in exc.stderr:
                    raise
        return found

    def stack_volumes(self, stack: str) -> list[str]:
        """The volumes `docker stack deploy` created for ``stack`` on this engine's node."""
        found = self._call(
            f"cannot list the volumes of stack {stack}",
            lambda: self.client.volume.list(filters=[("label", f"com.docker.stack.namespace={stack}")]),
        )
        return sorted(v.name for v in found)

    def stack_containers(self, stack: str) -> list[tuple[str, str]]:
        """(ID, state) of every container of ``stack``'s tasks on this engine's node, ended ones too (a finished
        job's task container stays, as the job's history, after `docker stack rm`)."""
        listed = self._docker(
            f"cannot list the containers of stack {stack}",
            [
                "ps",
                "--all",
                "--no-trunc",
                "--filter",
                f"label=com.docker.stack.namespace={stack}",
                "--format",
                "{{.ID}} {{.State}}",
            ],
        )
        return [(fields[0], fields[-1]) for fields in (line.split() for line in listed.splitlines()) if fields]

    def remove_container(self, container: str) -> None:
        self._docker(f"cannot remove container {container}", ["rm", container])

    def remove_volume(self, name: str) -> None:
        self._call(f"cannot remove volume {name}", lambda: self.client.volume.remove(name))
