"""Injected time: windows, TTLs, cooldowns and heartbeats read a :class:`Clock`, so tests
advance a :class:`FakeClock` instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (for timestamps shared across machines)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds (for durations inside one process)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told; ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


def utcnow(clock: Clock | None = None) -> datetime:
    """Timezone-aware UTC now from ``clock`` (the system clock by default)."""
    ts = (clock or SYSTEM_CLOCK).now()
    return datetime.fromtimestamp(ts, tz=UTC)


SYSTEM_CLOCK = SystemClock()
