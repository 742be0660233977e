"""Autoscaling knobs per model pool (``cicfleet scale``), stored in ``pool_scaling``.

The autoscaler reads them every tick (so a change applies without a restart), and the gateway's
first-node waiter learns from them which models may wait for a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet import audit
from fleet.autoscaler import PoolConfig, ScalingPolicy, Zone
from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.errors import InvalidRequest, NotFound
from fleet.logs import get_logger
from fleet.tables import PoolScaling
from fleet.waiter import FirstNodeWaiter

log = get_logger("cicfleet.scaling")

KNOBS = (
    "policy",
    "min_replicas",
    "max_replicas",
    "target",
    "ttft_slo_ms",
    "upscale_delay_s",
    "downscale_delay_s",
    "use_spot",
    "base_on_demand",
    "dynamic_on_demand",
    "regions",
)


class ScalingService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    async def set(self, model: str, *, actor: str, **knobs: Any) -> PoolScaling:
        """Create or change a pool's knobs; unknown knobs, an unknown policy or min > max are
        refused before anything is written."""
        unknown = set(knobs) - set(KNOBS)
        if unknown:
            raise InvalidRequest(f"unknown scaling setting(s): {', '.join(sorted(unknown))}")
        async with self._sessions() as session:
            row = await session.get(PoolScaling, model) or PoolScaling(model=model)
            for name, value in knobs.items():
                if value is not None:
                    setattr(row, name, value)
            if row.policy is not None and row.policy not in ScalingPolicy.registry:
                raise InvalidRequest(
                    f"unknown policy {row.policy!r}; known: {sorted(ScalingPolicy.registry)}",
                    param="policy",
                )
            if row.min_replicas > row.max_replicas:
                raise InvalidRequest("min_replicas must not exceed max_replicas")
            row.updated_at = utcnow(self._clock)
            session.add(row)
            audit.record(
                session,
                actor=actor,
                action="pool.scale",
                target_type="pool",
                target_id=model,
                detail={k: v for k, v in knobs.items() if v is not None},
            )
            await session.commit()
            return row

    async def get(self, model: str) -> PoolScaling:
        async with self._sessions() as session:
            row = await session.get(PoolScaling, model)
        if row is None:
            raise NotFound(f"no scaling settings for model {model!r}")
        return row

    async def list(self) -> Sequence[PoolScaling]:
        async with self._sessions() as session:
            rows = await session.execute(select(PoolScaling).order_by(PoolScaling.model))
            return list(rows.scalars())

    async def tell_waiter(self, waiter: FirstNodeWaiter) -> None:
        """Let requests of pools that can launch a node wait for their first one."""
        waiter.expect({r.model for r in await self.list() if r.max_replicas > 0})


def pool_config(row: PoolScaling, zones: Sequence[Zone]) -> PoolConfig:
    """The autoscaler's view of a row, over the zones of the pool's regions (all given zones
    when the row names no region)."""
    chosen = tuple(z for z in zones if not row.regions or z.region in row.regions)
    if not chosen:
        raise InvalidRequest(f"pool {row.model}: none of its regions {row.regions} is known")
    return PoolConfig(
        model=row.model,
        min_replicas=row.min_replicas,
        max_replicas=row.max_replicas,
        policy=row.policy,
        target=row.target,
        ttft_slo_s=row.ttft_slo_ms / 1000,
        upscale_delay_s=row.upscale_delay_s,
        downscale_delay_s=row.downscale_delay_s,
        use_spot=row.use_spot,
        base_on_demand=row.base_on_demand,
        dynamic_on_demand=row.dynamic_on_demand,
        zones=chosen,
    )
