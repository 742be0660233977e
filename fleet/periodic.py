"""A background task that calls one coroutine function every few seconds, or sooner when woken.

Every replica-local loop of the control plane (node pool refresh, key last-use writes) has the
same needs: run on an interval, run at once when something changed, never die of one failed
call, and stop cleanly. Jobs that must run once per cluster are leader jobs (``fleet.jobs``),
not this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from fleet.logs import get_logger

log = get_logger("cicfleet.periodic")


class Periodic:
    """Calls ``fn`` every ``seconds`` (and after :meth:`wake`) until :meth:`close`."""

    def __init__(self, name: str, fn: Callable[[], Awaitable[object]], *, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a period must be positive")
        self.name = name
        self._fn = fn
        self._seconds = seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Run as soon as possible instead of at the end of the current interval."""
        self._wake.set()

    def start(self, *, at_once: bool = False) -> None:
        """Start the loop; with ``at_once`` the first call runs now, not after one interval."""
        if at_once:
            self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def close(self, *, final_call: bool = False) -> None:
        """Stop the loop once its current call is over; with ``final_call``, call ``fn`` once
        more (to write what is left).

        A call is never cancelled halfway: a database call cut off mid-query leaves its
        connection to be terminated in the background, after the engine may be gone (seen with
        aiosqlite: a close that never returns and hangs the event loop's shutdown)."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        if final_call:
            await self._call()

    async def _call(self) -> None:
        try:
            await self._fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "periodic task failed", extra={"task": self.name, "error": type(exc).__name__}
            )

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._seconds)
            self._wake.clear()
            if self._stopping:
                return
            await self._call()
