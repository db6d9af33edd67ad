"""Ships into the app's containers in swarm mode (a Swarm config): uvicorn's own command line, run in this one
process, with a drain delay before the graceful stop.

    python3 uvicorn_drain.py --drain-seconds N <uvicorn arguments...>

When Swarm stops a task (a rolling update, a scale-down, `docker stack rm`) it sends SIGTERM at once, and uvicorn
then closes its listening socket. Traefik's Swarm provider only drops the task at its next poll of the engine, so
for up to a poll interval it still sends new requests, and kept-alive connections, to a task that refuses them.
Here the first SIGTERM (or SIGINT) starts a timer instead: the task keeps serving for N seconds, long enough for
Traefik to have dropped it, then uvicorn's own graceful shutdown runs (in-flight requests finish, up to
--timeout-graceful-shutdown). A second signal during the delay stops at once, as uvicorn does.

Standard library and uvicorn only: it runs on the app image's Python with the app's own uvicorn.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType

USAGE = "usage: uvicorn_drain.py --drain-seconds N <uvicorn arguments...>"


def _drain_seconds(argv: list[str]) -> tuple[float, list[str]]:
    if len(argv) < 2 or argv[0] != "--drain-seconds":
        sys.exit(USAGE)
    try:
        seconds = float(argv[1])
    except ValueError:
        sys.exit(f"{USAGE}: --drain-seconds expects a number of seconds, got {argv[1]!r}")
    if not 0 <= seconds <= 600:
        sys.exit(f"{USAGE}: --drain-seconds expects 0 to 600 seconds, got {argv[1]!r}")
    return seconds, argv[2:]


def main() -> None:
    seconds, uvicorn_args = _drain_seconds(sys.argv[1:])

    import uvicorn.main
    from uvicorn.server import Server

    stop = Server.handle_exit
    draining: set[int] = set()  # ids of the servers whose drain has started

    def handle_exit(self: Server, sig: int, frame: FrameType | None) -> None:
        if seconds == 0 or id(self) in draining:
            stop(self, sig, frame)
            return
        draining.add(id(self))
        print(
            f"composekit: signal {sig}: serving {seconds:g}s more while the proxy drops this task, then stopping",
            file=sys.stderr,
            flush=True,
        )
        timer = threading.Timer(seconds, stop, (self, sig, frame))
        timer.daemon = True
        timer.start()

    # uvicorn registers self.handle_exit for SIGINT/SIGTERM when it serves (every version looks it up then).
    Server.handle_exit = handle_exit  # type: ignore[method-assign]
    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn.main.main()


if __name__ == "__main__":
    main()
