"""The usage sink that writes ``usage_records`` in batches.

``record`` only appends to a buffer: the request path never waits for the database. A
background task writes the buffer every ``CIC_USAGE_FLUSH_SECONDS``, or as soon as it holds
``CIC_USAGE_BATCH_SIZE`` events, as one multi-row insert (executemany), which PostgreSQL takes
~100 times faster than a commit per row. A failed write keeps its batch and retries with
backoff; inserts skip request ids already stored, so a retry after an ambiguous failure never
duplicates a row. ``close`` writes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from fleet.logs import get_logger
from fleet.tables import UsageRecord
from fleet.usage import UsageEvent

log = get_logger("cicfleet.usage")

_MAX_BACKOFF = 5.0


def _row(event: UsageEvent) -> dict[str, Any]:
    return {
        "request_id": event.request_id,
        "tenant_id": event.tenant_id,
        "environment_id": event.environment_id,
        "key_id": event.key_id,
        "model": event.model,
        "region": event.region,
        "node_id": event.node_id,
        "endpoint": event.endpoint,
        "stream": event.stream,
        "status": event.status,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "ttft_ms": event.ttft_ms,
        "latency_ms": event.latency_ms,
        "created_at": datetime.fromtimestamp(event.created_at, tz=UTC),
    }


class UsageRecorder:
    """Buffers usage events and writes them to the database in batches."""

    def __init__(
        self, engine: AsyncEngine, *, flush_seconds: float = 0.5, batch_size: int = 2000
    ) -> None:
        self._engine = engine
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._buffer: list[UsageEvent] = []
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        table = UsageRecord.__table__  # type: ignore[attr-defined]
        insert = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
        self._insert = insert(table).on_conflict_do_nothing(index_elements=["request_id"])

    async def record(self, event: UsageEvent) -> None:
        self._buffer.append(event)
        if len(self._buffer) >= self._batch_size:
            self._full.set()

    async def flush(self) -> None:
        """Write everything buffered so far; raises if the database refuses it (the events
        stay buffered for the next attempt)."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self._batch_size]
                async with self._engine.begin() as conn:
                    await conn.execute(self._insert, [_row(e) for e in batch])
                del self._buffer[: len(batch)]

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        """Stop the background writer and write what is left (a few attempts)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for attempt in range(5):
            try:
                await self.flush()
                return
            except Exception as exc:
                log.warning(
                    "usage flush at shutdown failed",
                    extra={"error": type(exc).__name__, "attempt": attempt + 1},
                )
                await asyncio.sleep(0.2 * (attempt + 1))
        log.error("usage events lost at shutdown", extra={"count": len(self._buffer)})

    async def _loop(self) -> None:
        backoff = self._flush_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), backoff)
            self._full.clear()
            try:
                await self.flush()
                backoff = self._flush_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF)
                log.warning(
                    "usage flush failed; will retry",
                    extra={"error": type(exc).__name__, "pending": len(self._buffer)},
                )
