"""Admin routes for pool autoscaling knobs (``/admin/scaling``) and the leader's scheduled
jobs (``/admin/jobs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api.guards import actor, admin_guard
from fleet import Services
from fleet.jobs import job_report
from fleet.leader import current_leader
from fleet.scaling import ScalingService
from fleet.tables import PoolScaling


class ScalingIn(msgspec.Struct, forbid_unknown_fields=True):
    policy: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    target: float | None = None
    ttft_slo_ms: int | None = None
    upscale_delay_s: float | None = None
    downscale_delay_s: float | None = None
    use_spot: bool | None = None
    base_on_demand: int | None = None
    dynamic_on_demand: bool | None = None
    regions: list[str] | None = None


def _svc(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _scaling(row: PoolScaling) -> dict[str, Any]:
    return {**row.model_dump(exclude={"updated_at"}), "updated_at": _ts(row.updated_at)}


class ScalingController(Controller):
    path = "/admin/scaling"
    guards = [admin_guard]
    tags = ["admin"]

    @put("/{model:path}")
    async def set_(
        self,
        state: State,
        request: Request[Any, Any, Any],
        model: FromPath[str],
        data: JSONBody[ScalingIn],
    ) -> dict[str, Any]:
        svc = _svc(state)
        model = model.lstrip("/")  # a path parameter, so model names may hold a slash
        await svc.catalog.get_model(model)
        scaling = ScalingService(svc.sessions, clock=svc.clock)
        row = await scaling.set(model, actor=actor(request), **msgspec.structs.asdict(data))
        await scaling.tell_waiter(svc.waiter)
        return _scaling(row)

    @get("/")
    async def list_(self, state: State) -> list[dict[str, Any]]:
        svc = _svc(state)
        return [_scaling(r) for r in await ScalingService(svc.sessions).list()]


class JobsController(Controller):
    path = "/admin/jobs"
    guards = [admin_guard]
    tags = ["admin"]

    @get("/")
    async def report(self, state: State) -> dict[str, Any]:
        svc = _svc(state)
        lease = await current_leader(svc.sessions)
        return {
            "leader": None
            if lease is None
            else {"holder": lease.holder, "since": _ts(lease.acquired_at)},
            "jobs": [
                {
                    "name": j.name,
                    "leader": j.leader,
                    "runs": j.runs,
                    "failures": j.failures,
                    "last_started_at": _ts(j.last_started_at),
                    "last_finished_at": _ts(j.last_finished_at),
                    "last_ok": j.last_ok,
                    "last_error": j.last_error,
                    "last_duration_ms": j.last_duration_ms,
                }
                for j in await job_report(svc.sessions)
            ],
        }


SCALING_ADMIN_CONTROLLERS = [ScalingController, JobsController]
