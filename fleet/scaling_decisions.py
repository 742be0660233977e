"""Recent autoscaler decisions, kept in the database so every replica's console can show
what the leader decided for each pool and why.

A decision is stored when it differs from the pool's previous one (target, split or reason),
not every tick: a steady pool writes nothing. Each pool keeps its newest ``keep`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from fleet.autoscaler import ScalingDecision
from fleet.clock import Clock, utcnow
from fleet.tables import ScalingDecisionRow


def _signature(d: ScalingDecision) -> tuple[object, ...]:
    return (d.target, d.desired, d.spot, d.on_demand, d.reason, d.placements)


class DecisionLog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock | None = None,
        keep: int = 50,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._keep = keep
        self._last: dict[str, tuple[object, ...]] = {}

    async def record(self, decision: ScalingDecision) -> bool:
        """Store ``decision`` unless it repeats the pool's last one; True when stored."""
        sig = _signature(decision)
        if self._last.get(decision.model) == sig:
            return False
        async with self._sessions() as s:
            s.add(
                ScalingDecisionRow(
                    model=decision.model,
                    at=utcnow(self._clock),
                    desired=decision.desired,
                    target=decision.target,
                    spot=decision.spot,
                    on_demand=decision.on_demand,
                    reason=decision.reason[:256],
                    placements=[
                        {"region": p.region, "zone": p.zone, "spot": p.spot, "count": p.count}
                        for p in decision.placements
                    ],
                )
            )
            await s.flush()
            newest = (
                select(col(ScalingDecisionRow.id))
                .where(col(ScalingDecisionRow.model) == decision.model)
                .order_by(col(ScalingDecisionRow.id).desc())
                .limit(self._keep)
            )
            await s.execute(
                delete(ScalingDecisionRow).where(
                    col(ScalingDecisionRow.model) == decision.model,
                    col(ScalingDecisionRow.id).not_in(newest.scalar_subquery()),
                )
            )
            await s.commit()
        self._last[decision.model] = sig
        return True


async def recent_decisions(
    sessions: async_sessionmaker[AsyncSession], *, model: str | None = None, limit: int = 20
) -> Sequence[ScalingDecisionRow]:
    """The newest decisions first (of one pool when ``model`` is given)."""
    q = select(ScalingDecisionRow).order_by(col(ScalingDecisionRow.id).desc()).limit(limit)
    if model is not None:
        q = q.where(col(ScalingDecisionRow.model) == model)
    async with sessions() as s:
        return (await s.execute(q)).scalars().all()
