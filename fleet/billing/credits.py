"""Credits: free-tier and promotional money a tenant spends before anything is billed.

A tenant's credits are spent in the order its usage happened: the first ``granted`` worth of
its usage cost is covered, everything after is billed. Grants never expire (yet).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.billing.tables import CreditGrant
from fleet.errors import InvalidRequest
from fleet.tables import UsageRecord

CREDIT_KINDS = ("free_tier", "promo")
_ZERO = Decimal(0)


async def _sum_money(s: AsyncSession, column: object, *where: object) -> Decimal:
    """SUM of a money column, exact on both stores (SQLite keeps money as text)."""
    if s.bind.dialect.name == "postgresql":
        value = (await s.execute(select(func.sum(column)).where(*where))).scalar()  # type: ignore[call-overload]
        return Decimal(value or 0)
    values = (await s.execute(select(column).where(*where))).scalars()  # type: ignore[call-overload]
    return sum(values, _ZERO)


async def granted_and_spent(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str
) -> tuple[Decimal, Decimal]:
    """(credit granted, usage cost so far) of a tenant."""
    async with sessions() as s:
        granted = await _sum_money(s, CreditGrant.amount, CreditGrant.tenant_id == tenant_id)
        spent = await _sum_money(s, UsageRecord.cost, UsageRecord.tenant_id == tenant_id)
    return granted, spent


async def grant_credit(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: str,
    amount: Decimal,
    *,
    kind: str = "promo",
    note: str = "",
    actor: str,
) -> CreditGrant:
    """Add credit to a tenant (audited)."""
    from fleet import audit

    amount = Decimal(amount)
    if not amount.is_finite() or amount <= 0:
        raise InvalidRequest("a credit grant must be a positive amount", param="amount")
    if kind not in CREDIT_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(CREDIT_KINDS)}", param="kind")
    row = CreditGrant(
        tenant_id=tenant_id, kind=kind, amount=amount, note=note[:256], granted_by=actor[:64]
    )
    async with sessions() as s:
        s.add(row)
        audit.record(
            s,
            actor=actor,
            action="credit.grant",
            target_type="tenant",
            target_id=tenant_id,
            detail={"amount": str(amount), "kind": kind},
        )
        await s.commit()
        await s.refresh(row)
    return row


async def list_grants(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str
) -> list[CreditGrant]:
    async with sessions() as s:
        q = select(CreditGrant).where(CreditGrant.tenant_id == tenant_id).order_by(CreditGrant.id)
        return list((await s.execute(q)).scalars())


def credit_cover(cost_before: Decimal, cost_now: Decimal, granted: Decimal) -> Decimal:
    """How much of the usage between cumulative cost ``cost_before`` and ``cost_now`` the
    credits (``granted`` in total) pay for; the rest is billed."""
    covered_now = min(cost_now, granted)
    covered_before = min(cost_before, granted)
    return max(covered_now - covered_before, _ZERO)
