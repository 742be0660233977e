"""Audit trail: every admin change adds a row in the same transaction as the change itself,
so a change without its audit row cannot exist."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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
