"""Graceful shutdown of a serving replica on SIGTERM (what Docker, Kubernetes and systemd send).

In order:

1. **leadership is released at once**, so another replica takes the reconciler and jobs over
   within ``CIC_LEADER_RETRY_SECONDS`` instead of waiting for this one's streams to end;
2. **new connections are refused**: the signal is handed on to the HTTP server (granian stops
   its listener on SIGINT and SIGTERM alike, then waits for the requests it is serving);
3. **in-flight requests finish**, bounded by ``CIC_SHUTDOWN_GRACE_SECONDS``: when it runs out,
   streams still open end with a retryable 503 error event and their usage so far recorded;
4. then the app's lifespan closes as usual, and the usage sink's ``close`` writes every usage
   event still buffered before the process exits.

Only ``cicfleet serve`` (``api.asgi``) installs the handler: an app built in a test or
embedded elsewhere leaves the host's signals alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from fleet.logs import get_logger

log = get_logger("cicfleet.shutdown")


class GracefulShutdown:
    """Runs the steps above once, on the first SIGTERM."""

    def __init__(
        self,
        *,
        grace_seconds: float,
        step_down: Callable[[], Awaitable[None]],
        in_flight: Callable[[], int],
        cut: Callable[[], int],
    ) -> None:
        self._grace = grace_seconds
        self._step_down = step_down
        self._in_flight = in_flight
        self._cut = cut
        self.started = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def install(self) -> bool:
        """Take SIGTERM over in the running loop; False where signals cannot be handled
        (not the main thread, or a loop without signal support)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.begin)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def begin(self) -> None:
        """Start shutting down (idempotent)."""
        if self.started:
            return
        self.started = True
        loop = asyncio.get_running_loop()
        log.info(
            "shutting down",
            extra={"in_flight": self._in_flight(), "grace_seconds": self._grace},
        )
        task = loop.create_task(self._release_leadership())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._timer = loop.call_later(self._grace, self._grace_over)
        # The server's own handler for SIGINT stops accepting and waits for open requests.
        os.kill(os.getpid(), signal.SIGINT)

    async def _release_leadership(self) -> None:
        try:
            await self._step_down()
        except Exception as exc:
            log.warning("releasing leadership failed", extra={"error": str(exc)[:300]})

    def _grace_over(self) -> None:
        cut = self._cut()
        if cut:
            log.warning("shutdown grace over; ended requests still open", extra={"cut": cut})

    async def close(self) -> None:
        """Called at the end of the lifespan: cancel the timer, wait for the step-down."""
        if self._timer is not None:
            self._timer.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
