"""Hourly usage: ``usage_records`` summed into ``usage_hourly`` per hour, tenant,
environment, key, model and region.

Each run finds the hours touched by records stored since the last run (a watermark on the
record id, which the ledger assigns at insert time, so a late record, e.g. one replayed
from a journal after a crash, has a new id whatever hour it was served in) plus the current
and previous hour, and rebuilds each of those hours from scratch in one transaction: delete
the hour's rows, insert its sums. A re-run therefore writes the same figures, and a late row
lands in the hour it was served in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import cast, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.billing.tables import BillingState, UsageHourly
from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.logs import get_logger
from fleet.tables import UsageRecord
from fleet.types import UTCDateTime

log = get_logger("cicfleet.billing")

WATERMARK = "usage_hourly.last_record_id"
HOUR = timedelta(hours=1)
_LOCK_KEY = 0x0C1CB111  # advisory lock of the aggregation
_DIMENSIONS = ("tenant_id", "environment_id", "key_id", "model", "region")


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def aggregate(
    sessions: async_sessionmaker[AsyncSession],
    *,
    clock: Clock = SYSTEM_CLOCK,
    hours: Iterable[datetime] = (),
) -> list[datetime]:
    """Rebuild the hours touched since the last run (plus ``hours``); returns them."""
    now = hour_start(utcnow(clock))
    async with sessions() as s, s.begin():
        if s.bind.dialect.name == "postgresql":
            # One rebuild at a time across replicas (the leader's job, an operator's export).
            await s.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
        state = await s.get(BillingState, WATERMARK)
        last = state.value if state is not None else 0
        top = (await s.execute(select(func.max(UsageRecord.id)))).scalar() or 0
        touched = {now, now - HOUR, *(hour_start(h) for h in hours)}
        if top > last:
            touched |= await _hours_of(s, last, top)
        for hour in sorted(touched):
            await rebuild_hour(s, hour)
        if state is None:
            s.add(BillingState(name=WATERMARK, value=top))
        else:
            state.value = max(top, last)
            state.updated_at = utcnow(clock)
    return sorted(touched)


async def _hours_of(s: AsyncSession, after: int, upto: int) -> set[datetime]:
    u = UsageRecord
    where = (u.id > after, u.id <= upto)
    if s.bind.dialect.name == "postgresql":
        col = func.date_trunc("hour", func.timezone("UTC", u.created_at))
        rows = (await s.execute(select(col).where(*where).distinct())).scalars()
        return {r.replace(tzinfo=UTC) for r in rows}
    col = func.strftime("%Y-%m-%d %H:00:00", u.created_at)
    rows = (await s.execute(select(col).where(*where).distinct())).scalars()
    return {datetime.fromisoformat(r).replace(tzinfo=UTC) for r in rows}


async def rebuild_hour(s: AsyncSession, hour: datetime) -> None:
    """Replace one hour's ``usage_hourly`` rows with sums of its ``usage_records``."""
    u = UsageRecord
    end = hour + HOUR
    await s.execute(delete(UsageHourly).where(UsageHourly.hour == hour))
    dims = [getattr(u, d) for d in _DIMENSIONS]
    where = (u.created_at >= hour, u.created_at < end)
    if s.bind.dialect.name == "postgresql":
        q = (
            select(
                cast(literal(hour, UTCDateTime()), UTCDateTime()),
                *dims,
                func.count(),
                func.sum(u.prompt_tokens),
                func.sum(u.completion_tokens),
                func.sum(u.cost),
                func.sum(u.gpu_cost),
                func.now(),
            )
            .where(*where)
            .group_by(*dims)
        )
        cols = ["hour", *_DIMENSIONS, "requests", "prompt_tokens", "completion_tokens"]
        cols += ["cost", "gpu_cost", "updated_at"]
        await s.execute(insert(UsageHourly).from_select(cols, q))
        return
    sums: dict[tuple[str, ...], list[Any]] = {}
    q = select(*dims, u.prompt_tokens, u.completion_tokens, u.cost, u.gpu_cost).where(*where)
    for *dim, p, c, cost, gpu in (await s.execute(q)).all():
        acc = sums.setdefault(tuple(dim), [0, 0, 0, Decimal(0), Decimal(0)])
        acc[0] += 1
        acc[1] += p
        acc[2] += c
        acc[3] += cost
        acc[4] += gpu
    for dim, (n, p, c, cost, gpu) in sums.items():
        s.add(
            UsageHourly(
                hour=hour,
                **dict(zip(_DIMENSIONS, dim, strict=True)),
                requests=n,
                prompt_tokens=p,
                completion_tokens=c,
                cost=cost,
                gpu_cost=gpu,
            )
        )
    await s.flush()
