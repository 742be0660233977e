"""Which limits apply to a caller: plan defaults and overrides, resolved per layer.

The plan and override tables are small and read on every request, so the whole of both is held
in memory and reloaded every ``CIC_LIMITS_REFRESH_SECONDS`` in the background (the request
never waits for the database once loaded). A change made through this replica's admin API
reloads at once; other replicas see it within the refresh period.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import Clock
from fleet.keys import KeyInfo
from fleet.limits.model import DEFAULT_PLANS, Layer, LayerLimits, LimitFigures, Limits
from fleet.logs import get_logger
from fleet.tables import LimitOverride, PlanLimit

log = get_logger("cicfleet.limits")

_FIGURES = ("rpm", "tpm", "rpd", "tpd", "concurrency")


def figures_of(row: PlanLimit | LimitOverride) -> LimitFigures:
    return LimitFigures(**{f: getattr(row, f) for f in _FIGURES})


def layer_ident(layer: Layer, target_id: str) -> str:
    """The stable name of a layer's counters (ids, never names, so a rename keeps them)."""
    return "g" if layer is Layer.GLOBAL else f"{layer.value[0]}:{target_id}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    plans: dict[tuple[str, str], LimitFigures]
    overrides: dict[tuple[str, str], LimitFigures]

    def effective(self, layer: Layer, target_id: str, plan: str | None) -> Limits:
        """A layer's limits: its plan's figures for that layer, the override on top."""
        limits = Limits()
        if plan is not None and (plan, layer.value) in self.plans:
            limits = limits.overlay(self.plans[(plan, layer.value)])
        override = self.overrides.get((layer.value, target_id))
        return limits.overlay(override) if override is not None else limits


class LimitResolver:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._cache: dict[tuple[str, str, str, str], tuple[LayerLimits, ...]] = {}
        self._reloading: asyncio.Task[None] | None = None

    async def layers(self, key: KeyInfo) -> tuple[LayerLimits, ...]:
        """The limited layers of ``key``, outermost first (unlimited layers left out)."""
        if self._snapshot is None:
            await self.reload()
        elif self._clock.monotonic() - self._loaded_at >= self._refresh_seconds:
            self._reload_in_background()
        cache_key = (key.key_id, key.environment_id, key.tenant_id, key.plan)
        found = self._cache.get(cache_key)
        if found is None:
            found = self._resolve(key)
            self._cache[cache_key] = found
        return found

    def _resolve(self, key: KeyInfo) -> tuple[LayerLimits, ...]:
        snap = self._snapshot
        assert snap is not None
        out = []
        for layer, target in (
            (Layer.GLOBAL, ""),
            (Layer.TENANT, key.tenant_id),
            (Layer.ENVIRONMENT, key.environment_id),
            (Layer.KEY, key.key_id),
        ):
            plan = None if layer is Layer.GLOBAL else key.plan
            limits = snap.effective(layer, target, plan)
            if not limits.is_unlimited:
                out.append(LayerLimits(layer, layer_ident(layer, target), limits))
        return tuple(out)

    async def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            await self.reload()
        assert self._snapshot is not None
        return self._snapshot

    async def reload(self) -> None:
        """Read both tables now (after a change, or when stale)."""
        async with self._sessions() as s:
            plans = (await s.execute(select(PlanLimit))).scalars().all()
            overrides = (await s.execute(select(LimitOverride))).scalars().all()
        self._snapshot = Snapshot(
            plans={(p.plan, p.layer): figures_of(p) for p in plans}
            or {(plan, layer.value): f for (plan, layer), f in DEFAULT_PLANS.items()},
            overrides={(o.layer, o.target_id): figures_of(o) for o in overrides},
        )
        self._cache = {}
        self._loaded_at = self._clock.monotonic()

    def _reload_in_background(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            return
        self._loaded_at = self._clock.monotonic()  # one attempt per period, even on failure
        self._reloading = asyncio.get_running_loop().create_task(self._reload_quietly())

    async def _reload_quietly(self) -> None:
        try:
            await self.reload()
        except Exception as exc:
            log.warning("limits reload failed; keeping the last ones", extra={"error": repr(exc)})

    async def close(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            self._reloading.cancel()
