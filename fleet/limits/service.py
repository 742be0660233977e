"""Operators' view of limits: edit plans and per-layer overrides, and show what applies.

Every change is audited in its own transaction and reloads this replica's resolver at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet import audit
from fleet.clock import Clock, utcnow
from fleet.errors import InvalidRequest, NotFound
from fleet.limits.model import DEFAULT_PLANS, UNLIMITED, Layer, LimitFigures, Limits
from fleet.limits.resolver import LimitResolver, figures_of
from fleet.tables import ApiKey, Environment, LimitOverride, PlanLimit, Tenant, TenantStatus

FIGURES = ("rpm", "tpm", "rpd", "tpd", "concurrency")
PLAN_LAYERS = (Layer.TENANT, Layer.ENVIRONMENT, Layer.KEY)


@dataclass(frozen=True, slots=True)
class Target:
    """A layer instance an override applies to; ``label`` is what operators typed."""

    layer: Layer
    target_id: str
    label: str
    plan: str | None


@dataclass(frozen=True, slots=True)
class LayerView:
    target: Target
    override: LimitFigures | None
    effective: Limits

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.target.layer.value,
            "target": self.target.label,
            "target_id": self.target.target_id,
            "plan": self.target.plan,
            "override": self.override.as_dict() if self.override else None,
            "effective": self.effective.as_dict(),
        }


_MAX = {"concurrency": 2**31 - 1}
_MAX_COUNT = 10**15


def check_figures(changes: Mapping[str, int | None]) -> None:
    for name, value in changes.items():
        if name not in FIGURES:
            raise InvalidRequest(f"unknown limit {name!r}", param=name)
        if value is None or value == UNLIMITED:
            continue
        top = _MAX.get(name, _MAX_COUNT)
        if not 1 <= value <= top:  # to stop a tenant altogether, suspend it
            raise InvalidRequest(
                f"{name} must be a count from 1 to {top}, or {UNLIMITED} for no limit",
                param=name,
            )


class LimitsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        resolver: LimitResolver,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self._resolver = resolver
        self._clock = clock

    # -- plans -----------------------------------------------------------------------------
    async def plans(self) -> list[dict[str, Any]]:
        """Every plan's figures per layer (the built-in defaults until a plan is edited)."""
        async with self._sessions() as s:
            rows = await self._plan_rows(s)
        return [
            {"plan": r.plan, "layer": r.layer, **figures_of(r).as_dict()}
            for r in sorted(rows, key=lambda r: (r.plan, r.layer))
        ]

    async def _plan_rows(self, s: AsyncSession) -> list[PlanLimit]:
        rows = list((await s.execute(select(PlanLimit))).scalars().all())
        if rows:
            return rows
        return [
            PlanLimit(plan=plan, layer=layer.value, **figures.as_dict())
            for (plan, layer), figures in DEFAULT_PLANS.items()
        ]

    async def set_plan(
        self, plan: str, layer: Layer, changes: Mapping[str, int | None], *, actor: str
    ) -> dict[str, Any]:
        """Change some figures of a plan's layer (``None`` removes the plan's limit)."""
        check_figures(changes)
        if layer not in PLAN_LAYERS:
            raise InvalidRequest("plans set tenant, environment or key limits", param="layer")
        if not plan or len(plan) > 32:
            raise InvalidRequest("plan name must be 1-32 characters", param="plan")
        async with self._sessions() as s:
            if not (await s.execute(select(PlanLimit).limit(1))).first():
                s.add_all(await self._plan_rows(s))  # the defaults become editable rows
                await s.flush()
            row = await s.get(PlanLimit, (plan, layer.value))
            if row is None:
                row = PlanLimit(plan=plan, layer=layer.value)
                s.add(row)
            for name, value in changes.items():
                setattr(row, name, None if value == UNLIMITED else value)
            row.updated_at = utcnow(self._clock)
            audit.record(
                s,
                actor=actor,
                action="plan.set",
                target_type="plan",
                target_id=f"{plan}/{layer.value}",
                detail=dict(changes),
            )
            await s.commit()
            out = {"plan": plan, "layer": layer.value, **figures_of(row).as_dict()}
        await self._resolver.reload()
        return out

    # -- overrides -------------------------------------------------------------------------
    async def set_override(
        self, target: Target, changes: Mapping[str, int | None], *, actor: str
    ) -> LayerView:
        """Change some figures of one layer: a count, ``UNLIMITED``, or ``None`` to inherit."""
        check_figures(changes)
        async with self._sessions() as s:
            row = await s.get(LimitOverride, (target.layer.value, target.target_id))
            stored = row is not None
            if row is None:
                row = LimitOverride(layer=target.layer.value, target_id=target.target_id)
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = utcnow(self._clock)
            if any(getattr(row, f) is not None for f in FIGURES):
                s.add(row)
            elif stored:
                await s.delete(row)  # nothing overridden any more
            audit.record(
                s,
                actor=actor,
                action="limits.set",
                target_type=target.layer.value,
                target_id=target.target_id or "global",
                detail=dict(changes),
            )
            await s.commit()
        await self._resolver.reload()
        return (await self.show(target))[-1]

    async def show(self, target: Target) -> list[LayerView]:
        """Every layer from global down to ``target``, with its override and what applies."""
        chain = await self._chain(target)
        snap = await self._resolver.snapshot()
        return [
            LayerView(
                target=t,
                override=snap.overrides.get((t.layer.value, t.target_id)),
                effective=snap.effective(t.layer, t.target_id, t.plan),
            )
            for t in chain
        ]

    # -- targets ---------------------------------------------------------------------------
    async def target(
        self,
        *,
        tenant: str | None = None,
        environment: str | None = None,
        key: str | None = None,
        global_: bool = False,
    ) -> Target:
        """The layer an operator means: ``--global``, ``--key K``, ``--tenant T --env E`` or
        ``--tenant T`` (tenants by name or id, environments by name, keys by id)."""
        if global_:
            if tenant or environment or key:
                raise InvalidRequest("--global takes no tenant, environment or key", param="global")
            return Target(Layer.GLOBAL, "", "global", None)
        async with self._sessions() as s:
            if key:
                row = await s.get(ApiKey, key)
                t = await self._tenant(s, tenant) if tenant else None
                if row is None or (t is not None and row.tenant_id != t.id):
                    raise NotFound(f"key {key!r} not found", param="key")
                owner = await s.get(Tenant, row.tenant_id)
                return Target(Layer.KEY, row.id, row.id, owner.plan if owner else None)
            if not tenant:
                raise InvalidRequest("say --global, --tenant or --key", param="tenant")
            t = await self._tenant(s, tenant)
            if environment:
                q = select(Environment).where(
                    Environment.tenant_id == t.id, Environment.name == environment
                )
                env = (await s.execute(q)).scalar_one_or_none()
                if env is None:
                    raise NotFound(f"environment {environment!r} not found", param="environment")
                return Target(Layer.ENVIRONMENT, env.id, f"{t.name}/{env.name}", t.plan)
            return Target(Layer.TENANT, t.id, t.name, t.plan)

    async def _tenant(self, s: AsyncSession, ref: str) -> Tenant:
        q = select(Tenant).where(
            (Tenant.id == ref) | (Tenant.name == ref), Tenant.status != TenantStatus.DELETED
        )
        t = (await s.execute(q)).scalar_one_or_none()
        if t is None:
            raise NotFound(f"tenant {ref!r} not found", param="tenant")
        return t

    async def _chain(self, target: Target) -> list[Target]:
        """``target`` and the layers above it."""
        glob = Target(Layer.GLOBAL, "", "global", None)
        if target.layer is Layer.GLOBAL:
            return [glob]
        async with self._sessions() as s:
            if target.layer is Layer.TENANT:
                return [glob, target]
            if target.layer is Layer.ENVIRONMENT:
                env = await s.get(Environment, target.target_id)
                assert env is not None
                t = await s.get(Tenant, env.tenant_id)
                assert t is not None
                return [glob, Target(Layer.TENANT, t.id, t.name, t.plan), target]
            key = await s.get(ApiKey, target.target_id)
            assert key is not None
            t = await s.get(Tenant, key.tenant_id)
            env = await s.get(Environment, key.environment_id)
            assert t is not None and env is not None
            return [
                glob,
                Target(Layer.TENANT, t.id, t.name, t.plan),
                Target(Layer.ENVIRONMENT, env.id, f"{t.name}/{env.name}", t.plan),
                target,
            ]
