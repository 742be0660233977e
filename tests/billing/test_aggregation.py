"""usage_hourly: sums per hour and dimension, idempotent, late rows land in their hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fleet.billing.aggregation import aggregate
from fleet.billing.tables import UsageHourly
from fleet.tables import UsageRecord

H = datetime(2026, 11, 20, 9, tzinfo=UTC)


async def _add(services, n0: int, n: int, at: datetime, **kw) -> None:
    async with services.sessions() as s:
        for i in range(n0, n0 + n):
            base = dict(
                request_id=f"r{i}",
                tenant_id="ten",
                environment_id="env",
                key_id="key",
                model="m",
                endpoint="chat.completions",
                prompt_tokens=3,
                completion_tokens=4,
                cost=Decimal("0.0000001"),
                gpu_cost=Decimal("0.00000005"),
                created_at=at,
            )
            base.update(kw)
            s.add(UsageRecord(**base))
        await s.commit()


async def _hourly(services) -> list[tuple]:
    async with services.sessions() as s:
        rows = (await s.execute(select(UsageHourly))).scalars()
        return sorted(
            (r.hour, r.key_id, r.model, r.requests, r.prompt_tokens, r.completion_tokens, r.cost)
            for r in rows
        )


async def test_hourly_sums_are_idempotent_and_late_rows_land_in_their_hour(services) -> None:
    await _add(services, 0, 5, H + timedelta(minutes=59, seconds=59))
    await _add(services, 5, 2, H + timedelta(hours=1), key_id="key2")
    await _add(services, 7, 1, H + timedelta(minutes=1), model="m2")
    touched = await aggregate(services.sessions)
    assert H in touched and H + timedelta(hours=1) in touched
    first = await _hourly(services)
    assert first == [
        (H, "key", "m", 5, 15, 20, Decimal("0.0000005")),
        (H, "key", "m2", 1, 3, 4, Decimal("0.0000001")),
        (H + timedelta(hours=1), "key2", "m", 2, 6, 8, Decimal("0.0000002")),
    ]
    await aggregate(services.sessions)
    await aggregate(services.sessions, hours=[H])
    assert await _hourly(services) == first  # re-runs change nothing
    # A row served at 09:30 arrives hours later: it lands in 09:00 on the next run.
    await _add(services, 8, 1, H + timedelta(minutes=30))
    touched = await aggregate(services.sessions)
    assert H in touched
    after = await _hourly(services)
    assert after[0] == (H, "key", "m", 6, 18, 24, Decimal("0.0000006"))
