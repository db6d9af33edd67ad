"""Probes through Traefik, the public entrypoint, the way a client reaches the app: where they go (public_endpoint),
the wait until Traefik routes the app (wait_routed), the wait until it has loaded a routes generation
(wait_generation, the switch's gate), and the stream of probes during a switch (ProbeStream: the self-check).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config.project import Project
from ..errors import HealthTimeoutError, HttpCheckError, SshError, UserError
from ..render.traefik import GENERATION_HEADER
from ..verify.http import Endpoint, HttpClient
from .target import Engine, server_address
from .wait import Deadline, Poll, poll_until

__all__ = [
    "ProbeReport",
    "ProbeStream",
    "SwitchAborted",
    "check_probe_route",
    "public_endpoint",
    "wait_answer",
    "wait_generation",
    "wait_routed",
]


def public_endpoint(project: Project, engine: Engine | None = None) -> Endpoint:
    """Where composekit reaches the stack's public entrypoint (Traefik's published ports) to probe it: the one
    place that says so, for every probe. The engine's server, at server_address(engine): loopback for a local
    engine, the address an ssh:// host reaches otherwise."""
    config = project.config
    http, https = config.ports.http, config.ports.https
    if engine is not None and engine.probes is not None:
        # The server is not reachable from here: through the SSH connection that forwards its ports.
        return Endpoint(
            config.domain, engine.address, http, https, engine.probe_socket(http), engine.probe_socket(https)
        )
    return Endpoint(config.domain, server_address(engine), http, https)


def check_probe_route(project: Project, engine: Engine | None) -> None:
    """Refuse, before anything changes, a deploy whose probes could not reach the server: its address is not
    usable from here and no SSH connection forwards its ports (a tcp:// engine, say)."""
    if engine is None or engine.unreachable is None or engine.probes is not None:
        return
    config = project.config
    ports = (config.ports.http, config.ports.https)
    fix = (
        f"open the engine with connect(target, ports={ports}), so that the probes go through SSH"
        if engine.tunnel is not None
        else "reach the engine over SSH (host: ssh://USER@SERVER or an alias of your SSH config: the probes then go "
        "through the SSH connection), or name the server by an address this machine resolves"
    )
    raise UserError(
        f"cannot deploy to {engine.target.describe()}: {engine.unreachable}, so composekit could not probe the "
        f"stack through Traefik (ports {ports[0]} and {ports[1]} of the server) while it deploys. Nothing was "
        f"changed. Fix: {fix}"
    )


def wait_generation(
    project: Project,
    generation: str,
    deadline: Deadline,
    what: str,
    abort: Callable[[], str | None] = lambda: None,
    engine: Engine | None = None,
    status: int = 200,
) -> float:
    """Wait until Traefik has loaded the routes file of ``generation`` and its probe router reaches the app:
    a request naming the generation answers ``status`` (200; the maintenance routes of a restore: 503) with the
    generation echoed. Returns the seconds it took.
    ``abort`` is asked about once a second; a reason it returns ends the wait (SwitchAborted). Probes the SSH
    connection of ``engine`` cannot carry end it too (SshError)."""
    config = project.config
    asked = [deadline.clock()]
    probes_failed: list[str] = []  # the probes' SSH connection cannot carry them: no use waiting

    def observe() -> Poll[str]:
        if deadline.clock() - asked[0] >= 1.0:
            asked[0] = deadline.clock()
            reason = abort()
            if reason is not None:
                return Poll(reason, False, True, reason)
        try:
            answer = client.get("https", config.app.health_path, verify=False, headers={GENERATION_HEADER: generation})
        except HttpCheckError as exc:
            trouble = engine.probe_trouble() if engine is not None else None
            if trouble is not None:
                probes_failed.append(trouble)
                return Poll(trouble, False, True, trouble)
            return Poll(str(exc), False)
        seen = answer.headers.get(GENERATION_HEADER.lower())
        return Poll(
            f"HTTP {answer.status}, generation {seen or 'none'}", answer.status == status and seen == generation
        )

    started = deadline.clock()
    with HttpClient(public_endpoint(project, engine), timeout=5) as client:
        seen, _ = poll_until(
            observe, deadline.remaining(), first_delay=0.05, max_delay=0.2, clock=deadline.clock, sleep=deadline.sleep
        )
    if probes_failed:
        raise SshError(f"Traefik's routes cannot be probed: {probes_failed[-1]}")
    if seen.failed:
        raise SwitchAborted(seen.detail)
    if not seen.done:
        raise HealthTimeoutError(
            f"{deadline.ran_out(what, started)}: Traefik did not answer a probe of routes generation {generation} "
            f"with 200 (https://{config.domain}{config.app.health_path}); last answer: {seen.value}\n"
            "fix: check Traefik's logs (`composekit logs traefik`) for errors reading /etc/traefik/dynamic"
        )
    return deadline.clock() - started


class SwitchAborted(Exception):
    """The container being switched to failed while composekit waited for it (the reason is the message)."""


@dataclass
class ProbeReport:
    """What the probe stream saw during a switch."""

    sent: int = 0
    failed: int = 0
    slowest_ms: float = 0.0
    failures: list[str] = field(default_factory=list)  # the first few, as "HTTP 502" or the error
    stopped: str | None = None  # why the stream stopped before the switch ended (an error of its own)

    def summary(self) -> str:
        said = (
            f"{self.sent} probes through Traefik during the switch, {self.failed} failed, "
            f"slowest {self.slowest_ms:.0f} ms"
        )
        return said + (f"; the probe stream stopped early: {self.stopped}" if self.stopped else "")

    @property
    def passed(self) -> bool:
        """No probe failed and the stream probed until the switch ended."""
        return not self.failed and self.stopped is None


class ProbeStream:
    """A light stream of GETs of the health path through the public entrypoint (SNI = the domain), one every
    ``interval`` seconds from start() until stop(), at most ``max_seconds``: what a client saw during a switch."""

    def __init__(
        self, project: Project, interval: float = 0.1, max_seconds: float = 900, engine: Engine | None = None
    ) -> None:
        self.project = project
        self.engine = engine
        self.interval = interval
        self.max_seconds = max_seconds
        self.report = ProbeReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ProbeStream:
        self._thread.start()
        return self

    def stop(self) -> ProbeReport:
        self._stop.set()
        self._thread.join(timeout=15)
        return self.report

    def _run(self) -> None:
        """The thread's body: an error of its own ends the stream, said in the report (never a silent death)."""
        try:
            self._probe()
        except Exception as exc:  # any error: the thread must not die unreported
            self.report.stopped = f"{type(exc).__name__}: {exc}"

    def _probe(self) -> None:
        until = time.monotonic() + self.max_seconds
        path = self.project.config.app.health_path
        with HttpClient(public_endpoint(self.project, self.engine), timeout=5) as client:
            while not self._stop.is_set() and time.monotonic() < until:
                started = time.monotonic()
                try:
                    answer = client.get("https", path, verify=False)
                    failure = None if answer.status == 200 else f"HTTP {answer.status}"
                except HttpCheckError as exc:
                    failure = str(exc)
                took = (time.monotonic() - started) * 1000
                r = self.report
                r.sent += 1
                r.slowest_ms = max(r.slowest_ms, took)
                if failure is not None:
                    r.failed += 1
                    if len(r.failures) < 5:
                        r.failures.append(failure)
                self._stop.wait(self.interval)


def wait_routed(project: Project, deadline: Deadline, engine: Engine | None = None) -> None:
    """Wait until Traefik routes the domain to the app on the engine's server (its health path answers 200),
    reached at server_address(engine): 127.0.0.1 for a local engine.

    Healthy containers are not enough: Traefik loads the route a moment later, from the routes file (compose mode,
    its file provider watching the routes volume) or from its Swarm provider's next poll (mode: swarm).
    The certificate is not judged here (it may still be being issued); `composekit smoke` does that.
    """
    config = project.config
    endpoint = public_endpoint(project, engine)
    where = "on this machine" if endpoint.address == "127.0.0.1" else f"at {endpoint.address}"

    def observe() -> Poll[str]:
        try:
            answer = client.get("https", config.app.health_path, verify=False)
        except HttpCheckError as exc:
            trouble = engine.probe_trouble() if engine is not None else None
            return Poll(trouble, False, True, trouble) if trouble else Poll(str(exc), False)
        return Poll(f"HTTP {answer.status} {answer.text.strip()[:80]}", answer.status == 200)

    started = deadline.clock()
    with HttpClient(endpoint, timeout=5) as client:
        seen, _ = deadline.poll(observe)
    if seen.failed:
        raise SshError(f"the app is healthy, but its route cannot be probed: {seen.value}")
    if not seen.done:
        raise HealthTimeoutError(
            f"{deadline.ran_out('waiting for Traefik to route the app', started)}: the app is healthy but "
            f"https://{config.domain}{config.app.health_path} through Traefik {where} did not answer 200; "
            f"last answer: {seen.value}\n"
            "fix: check Traefik's logs (`composekit logs traefik`) for the router of the app"
        )


def wait_answer(
    project: Project, generation: str | None, timeout: float, engine: Engine | None = None, interval: float = 0.05
) -> tuple[float | None, str]:
    """Probe the public entrypoint every ``interval`` seconds until it answers: with ``generation``, a request naming
    it answered 200 with it echoed (Traefik routes the app); without, any HTTP answer. Returns (the seconds it took,
    or None after ``timeout``; the last answer seen). Finer than wait_generation: it times a hand-over of the ports."""
    path = project.config.app.health_path
    headers = {GENERATION_HEADER: generation} if generation is not None else None
    started = time.monotonic()
    last = "no probe sent"
    with HttpClient(public_endpoint(project, engine), timeout=2) as client:
        while time.monotonic() - started < timeout:
            try:
                answer = client.get("https", path, verify=False, headers=headers)
            except HttpCheckError as exc:
                last = str(exc)
            else:
                seen = answer.headers.get(GENERATION_HEADER.lower())
                last = f"HTTP {answer.status}, generation {seen or 'none'}"
                if generation is None or (answer.status == 200 and seen == generation):
                    return time.monotonic() - started, last
            time.sleep(interval)
    return None, last
