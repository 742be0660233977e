"""Operator intents on model pools: launch, scale, down, drain, and the status they watch.

These calls only change desired state (a ``pools`` row) or ask the registry to drain one node;
the reconciler does the launching and tearing down, so an operator command returns at once
and the result converges within a tick (the reconciler is woken right away).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet import audit
from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.errors import InvalidRequest, NotFound
from fleet.registry import Registry
from fleet.routing import Router, default_strategy, strategy
from fleet.tables import Pool


def pool_dict(pool: Pool) -> dict[str, Any]:
    return {
        "model": pool.model,
        "provider": pool.provider,
        "regions": list(pool.regions),
        "replicas": pool.replicas,
        "spot": pool.spot,
        "gpu": pool.gpu,
        "routing": pool.routing,
        "placements": list(pool.placements),
    }


class PoolService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        registry: Registry,
        router: Router,
        *,
        providers: Collection[str],
        wake: Callable[[], None] = lambda: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._router = router
        self._providers = providers
        self._wake = wake
        self._clock = clock

    async def launch(
        self,
        model: str,
        *,
        replicas: int = 1,
        regions: list[str] | None = None,
        spot: bool = True,
        provider: str = "local",
        gpu: str | None = None,
        routing: str | None = None,
        actor: str,
    ) -> dict[str, Any]:
        """Create or replace the desired state of ``model``'s pool."""
        if provider not in self._providers:
            known = ", ".join(sorted(self._providers))
            raise InvalidRequest(
                f"unknown provider {provider!r} (known: {known})", param="provider"
            )
        if replicas < 0:
            raise InvalidRequest("replicas must be 0 or more", param="replicas")
        routing = routing or default_strategy()
        strategy(routing)  # validates the name
        async with self._sessions() as s:
            pool = await s.get(Pool, model)
            if pool is None:
                pool = Pool(model=model)
                s.add(pool)
            pool.replicas, pool.regions, pool.spot = replicas, list(regions or ["local"]), spot
            pool.provider, pool.gpu, pool.routing = provider, gpu, routing
            pool.updated_at = utcnow(self._clock)
            audit.record(
                s,
                actor=actor,
                action="pool.launch",
                target_type="pool",
                target_id=model,
                detail=pool_dict(pool),
            )
            await s.commit()
        self._router.use(model, routing)
        self._wake()
        return pool_dict(pool)

    async def scale(
        self,
        model: str,
        replicas: int,
        *,
        actor: str,
        placements: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Set the pool's size; ``placements`` (from the autoscaler) say where its nodes go,
        and a size set without them (an operator's) spreads over the pool's regions."""
        if replicas < 0:
            raise InvalidRequest("replicas must be 0 or more", param="replicas")
        async with self._sessions() as s:
            pool = await s.get(Pool, model)
            if pool is None:
                raise NotFound(f"no pool for model {model!r}; launch it first", param="model")
            pool.replicas = replicas
            pool.placements = [dict(p) for p in placements]
            pool.updated_at = utcnow(self._clock)
            detail: dict[str, Any] = {"replicas": replicas}
            if placements:
                detail["placements"] = pool.placements
            audit.record(
                s,
                actor=actor,
                action="pool.scale",
                target_type="pool",
                target_id=model,
                detail=detail,
            )
            await s.commit()
        self._wake()
        return pool_dict(pool)

    async def down(self, model: str | None, *, actor: str) -> list[str]:
        """Remove the pool of ``model`` (every pool when None): its nodes drain, then go."""
        async with self._sessions() as s:
            q = select(Pool.model)
            if model is not None:
                q = q.where(Pool.model == model)
            models = list((await s.execute(q)).scalars().all())
            if model is not None and not models:
                raise NotFound(f"no pool for model {model!r}", param="model")
            await s.execute(delete(Pool).where(Pool.model.in_(models)))  # type: ignore[attr-defined]
            for m in models:
                audit.record(s, actor=actor, action="pool.down", target_type="pool", target_id=m)
            await s.commit()
        self._wake()
        return models

    async def drain(self, node_id: str, *, actor: str) -> dict[str, Any]:
        await self._registry.refresh()
        node = await self._registry.begin_drain(node_id, reason="operator")
        async with self._sessions() as s:
            audit.record(s, actor=actor, action="node.drain", target_type="node", target_id=node_id)
            await s.commit()
        self._wake()
        return node.as_dict(self._clock.now(), self._clock.monotonic())

    async def status(self, model: str | None = None) -> dict[str, Any]:
        """Pools (desired) and nodes (observed, with load and ejection) for the operator."""
        async with self._sessions() as s:
            q = select(Pool).order_by(Pool.model)
            if model is not None:
                q = q.where(Pool.model == model)
            pools = [pool_dict(p) for p in (await s.execute(q)).scalars().all()]
        await self._registry.refresh()
        now, mono = self._clock.now(), self._clock.monotonic()
        nodes = [
            n.as_dict(now, mono)
            for n in sorted(self._registry.nodes.values(), key=lambda n: (n.model, n.created_at))
            if model is None or n.model == model
        ]
        for pool in pools:
            mine = [n for n in nodes if n["model"] == pool["model"]]
            pool["ready"] = sum(1 for n in mine if n["state"] == "ready")
            pool["nodes"] = len(mine)
        return {"pools": pools, "nodes": nodes}
