"""gunicorn.conf.py's drain (mode: swarm with app/workers): DRAIN_SECONDS turns into a `when_ready` hook that holds
the master's first SIGTERM or SIGINT for that long, then hands it to gunicorn's own handler; a second signal goes
through at once. Driven with real signals sent to this process, with a stand-in for gunicorn's handler."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from composekit.runtime.gunicorn_conf import Resources, drain_hook, drain_seconds, settings

RESOURCES = Resources(host_cpus=2, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="test")


class Gunicorn:
    """Stands in for gunicorn's Arbiter.signal: records what reached it, and when."""

    def __init__(self) -> None:
        self.received: list[tuple[int, float]] = []
        self.arrived = threading.Event()

    def signal(self, sig: int, frame: FrameType | None) -> None:
        self.received.append((sig, time.monotonic()))
        self.arrived.set()


@pytest.fixture
def gunicorn() -> Iterator[Gunicorn]:
    """Gunicorn's handlers installed for SIGTERM and SIGINT, as the arbiter has them when `when_ready` runs; this
    process's own handlers come back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    fake = Gunicorn()
    for sig in saved:
        signal.signal(sig, fake.signal)
    try:
        yield fake
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_the_first_sigterm_reaches_gunicorn_after_the_drain(
    gunicorn: Gunicorn, capfd: pytest.CaptureFixture[str]
) -> None:
    drain_hook(0.4)(object())
    sent = time.monotonic()
    signal.raise_signal(signal.SIGTERM)
    assert gunicorn.received == []  # held: the workers keep serving meanwhile
    assert gunicorn.arrived.wait(10)
    ((sig, at),) = gunicorn.received
    assert sig == signal.SIGTERM and at - sent >= 0.4
    assert "composekit: signal 15: serving 0.4s more while the proxy drops this task" in capfd.readouterr().err


def test_a_second_signal_during_the_drain_goes_through_at_once_and_only_once(gunicorn: Gunicorn) -> None:
    drain_hook(30)(object())
    signal.raise_signal(signal.SIGTERM)
    assert gunicorn.received == []
    signal.raise_signal(signal.SIGINT)  # an impatient operator: Ctrl-C, or `docker kill` a second time
    assert [sig for sig, _ in gunicorn.received] == [signal.SIGINT]
    time.sleep(0.2)
    assert [sig for sig, _ in gunicorn.received] == [signal.SIGINT]  # the held SIGTERM's timer was cancelled


def test_drain_seconds_is_read_checked_and_off_by_default() -> None:
    assert drain_seconds({}) == 0 and drain_seconds({"DRAIN_SECONDS": " "}) == 0
    assert drain_seconds({"DRAIN_SECONDS": "7"}) == 7
    with pytest.raises(ValueError, match="DRAIN_SECONDS must be 0 to 600 seconds, got '-1'"):
        drain_seconds({"DRAIN_SECONDS": "-1"})
    with pytest.raises(ValueError, match="DRAIN_SECONDS must be 0 to 600 seconds, got 'soon'"):
        drain_seconds({"DRAIN_SECONDS": "soon"})


def test_settings_install_the_hook_only_with_drain_seconds() -> None:
    assert "when_ready" not in settings({}, RESOURCES)
    assert "drain" not in str(settings({}, RESOURCES)["_explanation"])
    drained = settings({"DRAIN_SECONDS": "7"}, RESOURCES)
    assert callable(drained["when_ready"])
    assert str(drained["_explanation"]).endswith("; drain 7s before a graceful stop")


def test_gunicorns_control_socket_is_disabled() -> None:
    """Gunicorn 25.1+ would create $HOME/.gunicorn/gunicorn.ctl: an ERROR line at every start on a read-only root."""
    resources = Resources(host_cpus=2, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="test")
    assert settings({}, resources)["control_socket_disable"] is True
