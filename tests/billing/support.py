"""Helpers shared by the billing tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from fleet.tables import UsageRecord
from fleet.usage import UsageEvent

T_SERVED = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def event(n: int, **kw: Any) -> UsageEvent:
    base: dict[str, Any] = dict(
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
        latency_ms=2000.0,
        created_at=T_SERVED,
        ttft_ms=3.0,
        node_id="node_1",
    )
    base.update(kw)
    return UsageEvent(**base)


async def count(sessions) -> int:
    async with sessions() as s:
        return (await s.execute(select(func.count()).select_from(UsageRecord))).scalar_one()


async def rows(sessions) -> dict[str, UsageRecord]:
    async with sessions() as s:
        return {r.request_id: r for r in (await s.execute(select(UsageRecord))).scalars()}
