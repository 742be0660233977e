"""Admin API for limits (``/admin/limits``, ``/admin/plans``), bearer ``CIC_ADMIN_TOKEN``.

In a body, a figure left out is unchanged, ``null`` inherits from the plan (removes the plan's
limit, for plans) and ``-1`` means no limit.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.guards import actor, admin_guard
from fleet import Services
from fleet.limits import FIGURES, Layer

_Figure = int | None | msgspec.UnsetType


class FiguresIn(msgspec.Struct, forbid_unknown_fields=True):
    rpm: _Figure = msgspec.UNSET
    tpm: _Figure = msgspec.UNSET
    rpd: _Figure = msgspec.UNSET
    tpd: _Figure = msgspec.UNSET
    concurrency: _Figure = msgspec.UNSET

    def changes(self) -> dict[str, int | None]:
        return {f: getattr(self, f) for f in FIGURES if getattr(self, f) is not msgspec.UNSET}


class LimitsIn(FiguresIn, forbid_unknown_fields=True):
    tenant: str | None = None
    environment: str | None = None
    key: str | None = None
    global_: bool = msgspec.field(default=False, name="global")


class PlanIn(FiguresIn, forbid_unknown_fields=True):
    layer: Layer = Layer.TENANT


def _svc(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


class LimitsController(Controller):
    path = "/admin/limits"
    guards = [admin_guard]
    tags = ["admin"]

    @get("/")
    async def show(
        self,
        state: State,
        tenant: FromQuery[str | None] = None,
        environment: FromQuery[str | None] = None,
        key: FromQuery[str | None] = None,
        global_: Annotated[bool, QueryParameter(name="global")] = False,
    ) -> list[dict[str, Any]]:
        """Each layer from global down to the one asked for: its override and what applies."""
        limits = _svc(state).limits
        target = await limits.target(
            tenant=tenant, environment=environment, key=key, global_=global_
        )
        return [view.as_dict() for view in await limits.show(target)]

    @put("/")
    async def set_(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[LimitsIn]
    ) -> dict[str, Any]:
        limits = _svc(state).limits
        target = await limits.target(
            tenant=data.tenant, environment=data.environment, key=data.key, global_=data.global_
        )
        view = await limits.set_override(target, data.changes(), actor=actor(request))
        return view.as_dict()


class PlanController(Controller):
    path = "/admin/plans"
    guards = [admin_guard]
    tags = ["admin"]

    @get("/")
    async def list_(self, state: State) -> list[dict[str, Any]]:
        return await _svc(state).limits.plans()

    @put("/{plan:str}")
    async def set_(
        self,
        state: State,
        request: Request[Any, Any, Any],
        plan: FromPath[str],
        data: JSONBody[PlanIn],
    ) -> dict[str, Any]:
        return await _svc(state).limits.set_plan(
            plan, data.layer, data.changes(), actor=actor(request)
        )


LIMITS_CONTROLLERS = [LimitsController, PlanController]
