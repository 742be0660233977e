"""Audit trail: every admin change adds a row in the same transaction as the change itself,
so a change without its audit row cannot exist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.logs import request_id_var
from fleet.tables import AuditLog


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to ``session``; it commits with the change it describes."""
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail or {},
            request_id=request_id_var.get(),
        )
    )


async def recent(
    sessions: async_sessionmaker[AsyncSession], *, limit: int = 100
) -> Sequence[AuditLog]:
    """The newest audit rows first."""
    async with sessions() as s:
        q = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)  # type: ignore[union-attr]
        return (await s.execute(q)).scalars().all()
