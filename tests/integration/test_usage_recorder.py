"""Usage events reach ``usage_records`` in batches, survive a failing database, never twice."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fleet.tables import UsageRecord
from fleet.usage import UsageEvent
from fleet.usage_recorder import UsageRecorder


def event(n: int, **kw: object) -> UsageEvent:
    base = dict(
        request_id=f"req-{n}",
        tenant_id="ten_1",
        environment_id="env_1",
        key_id="key_1",
        model="m",
        endpoint="chat.completions",
        stream=False,
        status=200,
        prompt_tokens=10,
        completion_tokens=n,
        latency_ms=12.5,
        created_at=1_800_000_000.0,
        ttft_ms=3.0,
        node_id="node_1",
    )
    base.update(kw)
    return UsageEvent(**base)  # type: ignore[arg-type]


async def count(services) -> int:
    async with services.sessions() as s:
        return (await s.execute(select(func.count()).select_from(UsageRecord))).scalar_one()


async def test_batches_are_written_and_duplicates_skipped(services) -> None:
    rec = UsageRecorder(services.engine, batch_size=50)
    for n in range(120):
        await rec.record(event(n))
    assert await count(services) == 0  # nothing written on the request path
    await rec.flush()
    await rec.record(event(5))  # replayed after an ambiguous failure
    await rec.flush()
    assert await count(services) == 120 and rec.pending == 0
    async with services.sessions() as s:
        row = (await s.execute(select(UsageRecord).where(UsageRecord.request_id == "req-7"))).one()
    assert row[0].completion_tokens == 7 and row[0].created_at.year == 2027


class FlakyEngine:
    """The real engine, except that the database is unreachable while ``down`` is set."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.dialect = engine.dialect
        self.down = True

    def begin(self):
        if self.down:
            raise ConnectionError("database went away")
        return self._engine.begin()


async def test_failed_flush_keeps_the_batch(services) -> None:
    engine = FlakyEngine(services.engine)
    rec = UsageRecorder(engine)  # type: ignore[arg-type]
    await rec.record(event(1))
    with pytest.raises(ConnectionError):
        await rec.flush()
    assert rec.pending == 1
    engine.down = False
    await rec.close()
    assert await count(services) == 1


async def test_background_writer_and_close(services) -> None:
    rec = UsageRecorder(services.engine, flush_seconds=30, batch_size=3)
    await rec.start()
    for n in range(4):
        await rec.record(event(n))
    for _ in range(200):  # the full batch wakes the writer long before 30 s
        if await count(services) >= 3:
            break
        await services.clock.sleep(0.01)
    assert await count(services) >= 3
    await rec.close()
    assert await count(services) == 4
