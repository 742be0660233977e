"""The reports interface of billing: usage per model, key, hour or day; a tenant's credit
balance; revenue against GPU cost per tenant and model.

The web console and the CLI read money and usage through these functions only. This
implementation sums the ``usage_records`` table (cost from its ``cost`` column); it knows no
credits (the balance is 0) and no GPU cost (margin is revenue).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from fleet.errors import InvalidRequest
from fleet.tables import UsageRecord

GROUPINGS = ("model", "key", "hour", "day")


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str  # model name | key id | ISO-8601 UTC bucket start for "hour"/"day"
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class MarginRow:
    tenant_id: str
    model: str
    revenue: Decimal
    gpu_cost: Decimal
    margin: Decimal


def _bucket(at: datetime, by: str) -> str:
    at = at.astimezone(UTC)
    if by == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
    else:
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.isoformat()


async def usage_report(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by: str = "model",
) -> list[UsageRow]:
    """Requests, tokens and cost grouped ``by`` model, key, hour or day, ordered by group."""
    if by not in GROUPINGS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPINGS)}", param="by")
    q = select(
        col(UsageRecord.model),
        col(UsageRecord.key_id),
        col(UsageRecord.created_at),
        col(UsageRecord.prompt_tokens),
        col(UsageRecord.completion_tokens),
        col(UsageRecord.cost),
    )
    if tenant_id is not None:
        q = q.where(col(UsageRecord.tenant_id) == tenant_id)
    if since is not None:
        q = q.where(col(UsageRecord.created_at) >= since)
    if until is not None:
        q = q.where(col(UsageRecord.created_at) < until)
    sums: dict[str, list[int | Decimal]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    async with sessions() as s:
        for model, key_id, at, prompt, completion, cost in await s.execute(q):
            group = model if by == "model" else key_id if by == "key" else _bucket(at, by)
            row = sums[group]
            row[0] += 1
            row[1] += prompt
            row[2] += completion
            row[3] += cost
    return [
        UsageRow(group, int(r[0]), int(r[1]), int(r[2]), Decimal(r[3]))
        for group, r in sorted(sums.items())
    ]


async def credit_balance(sessions: async_sessionmaker[AsyncSession], tenant_id: str) -> Decimal:
    """Credits left to ``tenant_id`` (none are sold here)."""
    return Decimal(0)


async def margin_report(
    sessions: async_sessionmaker[AsyncSession],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[MarginRow]:
    """Revenue per tenant and model against the GPU cost of serving it."""
    q = select(
        col(UsageRecord.tenant_id), col(UsageRecord.model), func.sum(col(UsageRecord.cost))
    ).group_by(col(UsageRecord.tenant_id), col(UsageRecord.model))
    if since is not None:
        q = q.where(col(UsageRecord.created_at) >= since)
    if until is not None:
        q = q.where(col(UsageRecord.created_at) < until)
    async with sessions() as s:
        rows = (await s.execute(q)).all()
    out = []
    for tenant_id, model, revenue in sorted(rows):
        revenue = Decimal(revenue or 0)
        out.append(MarginRow(tenant_id, model, revenue, Decimal(0), revenue))
    return out
