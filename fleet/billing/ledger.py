"""Moves journaled usage events into ``usage_records``, priced, in batches.

PostgreSQL: one ``COPY`` of the batch straight into ``usage_records`` (COPY takes ~500k
rows/s here where a commit per row caps at ~2k/s). If any request id is stored already (a
replayed segment: a crash between the commit and the segment's deletion), that COPY fails
whole on the unique index and the batch goes again through a temporary table and
``INSERT .. SELECT .. ON CONFLICT (request_id) DO NOTHING``, so a replay never duplicates a
row. SQLite: one executemany that skips stored ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from fleet.billing.pricing import Pricer, gpu_cost, gpu_seconds_share, token_cost
from fleet.tables import UsageRecord
from fleet.usage import UsageEvent

COLUMNS = (
    "request_id",
    "tenant_id",
    "environment_id",
    "key_id",
    "model",
    "region",
    "node_id",
    "endpoint",
    "stream",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "ttft_ms",
    "latency_ms",
    "cost",
    "gpu_cost",
    "created_at",
)
_COLS = (
    "request_id, tenant_id, environment_id, key_id, model, region, node_id, endpoint, stream, "
    "status, prompt_tokens, completion_tokens, ttft_ms, latency_ms, cost, gpu_cost, created_at"
)
_STAGE = "CREATE TEMP TABLE _usage_stage ON COMMIT DROP AS SELECT " + _COLS
_STAGE += " FROM usage_records WITH NO DATA"
_MOVE = "INSERT INTO usage_records (" + _COLS + ") SELECT " + _COLS
_MOVE += " FROM _usage_stage ON CONFLICT (request_id) DO NOTHING"
assert _COLS.split(", ") == list(COLUMNS)


class UsageShipper:
    """Writes a batch of usage events as priced ``usage_records`` rows, at most once each."""

    def __init__(self, engine: AsyncEngine, pricer: Pricer) -> None:
        self._engine = engine
        self._pricer = pricer
        self._pg = engine.dialect.name == "postgresql"
        insert = pg_insert if self._pg else sqlite_insert
        table = UsageRecord.__table__  # type: ignore[attr-defined]
        self._insert = insert(table).on_conflict_do_nothing(index_elements=["request_id"])

    async def ship(self, events: Sequence[UsageEvent]) -> None:
        """Write ``events``; raises if the database refuses (the caller keeps them)."""
        if not events:
            return
        pricer = self._pricer
        await pricer.prepare({e.model for e in events}, {e.node_id for e in events if e.node_id})
        rows = [self._row(e) for e in events]
        if self._pg:
            import asyncpg

            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                apg: Any = raw.driver_connection
                try:
                    # The common case: no row stored yet, COPY straight into the table.
                    async with apg.transaction():
                        await apg.copy_records_to_table(
                            "usage_records", records=rows, columns=COLUMNS
                        )
                except asyncpg.UniqueViolationError:
                    # A replayed segment: some rows are stored already; skip those.
                    async with apg.transaction():
                        await apg.execute(_STAGE)
                        await apg.copy_records_to_table(
                            "_usage_stage", records=rows, columns=COLUMNS
                        )
                        await apg.execute(_MOVE)
        else:
            async with self._engine.begin() as conn:
                await conn.execute(self._insert, [dict(zip(COLUMNS, r, strict=True)) for r in rows])

    def _row(self, e: UsageEvent) -> tuple[Any, ...]:
        at = datetime.fromtimestamp(e.created_at, tz=UTC)
        inp, out = self._pricer.price(e.model, e.region, at)
        cost = token_cost(e.prompt_tokens, e.completion_tokens, inp, out)
        share = gpu_seconds_share(e.latency_ms / 1000.0, e.node_concurrency)
        node_cost: Decimal = gpu_cost(self._pricer.node_price(e.node_id), share)
        return (
            e.request_id,
            e.tenant_id,
            e.environment_id,
            e.key_id,
            e.model,
            e.region,
            e.node_id,
            e.endpoint,
            e.stream,
            e.status,
            e.prompt_tokens,
            e.completion_tokens,
            e.ttft_ms,
            e.latency_ms,
            cost,
            node_cost,
            at,
        )
