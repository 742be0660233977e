"""Usage, credit and margin reports for operators (CLI), tenants (``GET /v1/usage``) and the
console. They read ``usage_records`` itself, which the usage journal fills within about a
second, so a report includes requests served a few seconds ago.

Money is summed as ``Decimal``: PostgreSQL sums NUMERIC exactly; SQLite stores money as text
(its SUM would go through float), so there rows are summed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.errors import InvalidRequest
from fleet.tables import UsageRecord

GROUPINGS = ("model", "key", "hour", "day")
_ZERO = Decimal(0)


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
    start = at.replace(minute=0, second=0, microsecond=0)
    if by == "day":
        start = start.replace(hour=0)
    return start.isoformat().replace("+00:00", "Z")


def _filters(tenant_id: str | None, since: datetime | None, until: datetime | None) -> list[Any]:
    u = UsageRecord
    where: list[Any] = []
    if tenant_id is not None:
        where.append(u.tenant_id == tenant_id)
    if since is not None:
        where.append(u.created_at >= since)
    if until is not None:
        where.append(u.created_at < until)
    return where


async def usage_report(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by: str = "model",
) -> list[UsageRow]:
    """Requests, tokens and cost grouped ``by`` model, key, hour or day, sorted by group."""
    if by not in GROUPINGS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPINGS)}", param="by")
    u = UsageRecord
    where = _filters(tenant_id, since, until)
    async with sessions() as s:
        dialect = s.bind.dialect.name
        if dialect == "postgresql":
            if by in ("hour", "day"):
                col: Any = func.date_trunc(by, func.timezone("UTC", u.created_at))
            else:
                col = u.model if by == "model" else u.key_id
            q = (
                select(
                    col,
                    func.count(),
                    func.coalesce(func.sum(u.prompt_tokens), 0),
                    func.coalesce(func.sum(u.completion_tokens), 0),
                    func.coalesce(func.sum(u.cost), _ZERO),
                )
                .where(*where)
                .group_by(col)
            )
            rows: dict[str, list[Any]] = {}
            for group, n, p, c, cost in (await s.execute(q)).all():
                if isinstance(group, datetime):
                    group = _bucket(group.replace(tzinfo=UTC), by)
                rows[str(group)] = [int(n), int(p), int(c), Decimal(cost)]
        else:
            q = select(
                u.model, u.key_id, u.created_at, u.prompt_tokens, u.completion_tokens, u.cost
            ).where(*where)
            rows = {}
            for model, key, at, p, c, cost in (await s.execute(q)).all():
                group = model if by == "model" else key if by == "key" else _bucket(at, by)
                acc = rows.setdefault(group, [0, 0, 0, _ZERO])
                acc[0] += 1
                acc[1] += p
                acc[2] += c
                acc[3] += cost
    return [UsageRow(g, *rows[g]) for g in sorted(rows)]


async def credit_balance(sessions: async_sessionmaker[AsyncSession], tenant_id: str) -> Decimal:
    """Credit left: everything granted minus the cost of all usage so far (never below 0).
    Credits are spent first, so this is also what the next requests will not be billed for."""
    from fleet.billing.credits import granted_and_spent

    granted, spent = await granted_and_spent(sessions, tenant_id)
    return max(granted - spent, _ZERO)


async def margin_report(
    sessions: async_sessionmaker[AsyncSession],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[MarginRow]:
    """Revenue (what requests were priced at) against the GPU cost of serving them, per tenant
    and model: a node's price per hour times each request's share of its GPU-seconds."""
    u = UsageRecord
    where = _filters(None, since, until)
    sums: dict[tuple[str, str], list[Decimal]] = {}
    async with sessions() as s:
        if s.bind.dialect.name == "postgresql":
            q = (
                select(u.tenant_id, u.model, func.sum(u.cost), func.sum(u.gpu_cost))
                .where(*where)
                .group_by(u.tenant_id, u.model)
            )
            for tenant, model, rev, gpu in (await s.execute(q)).all():
                sums[(tenant, model)] = [Decimal(rev or 0), Decimal(gpu or 0)]
        else:
            q = select(u.tenant_id, u.model, u.cost, u.gpu_cost).where(*where)
            for tenant, model, rev, gpu in (await s.execute(q)).all():
                acc = sums.setdefault((tenant, model), [_ZERO, _ZERO])
                acc[0] += rev
                acc[1] += gpu
    return [
        MarginRow(tenant_id=t, model=m, revenue=r, gpu_cost=g, margin=r - g)
        for (t, m), (r, g) in sorted(sums.items())
    ]


def usage_rows_json(rows: Sequence[UsageRow]) -> list[dict[str, Any]]:
    """Rows as JSON objects, money as strings (exact)."""
    return [
        {
            "group": r.group,
            "requests": r.requests,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "cost": str(r.cost),
        }
        for r in rows
    ]
