"""Admin routes of the fleet (``/admin/fleet``): pools (launch, scale, down), node drain and
status, behind the same admin guard as the rest of ``/admin``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from api.guards import actor, admin_guard
from api.node_api import fleet_of


class LaunchBody(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    replicas: int = 1
    regions: list[str] | None = None
    spot: bool = True
    provider: str = "local"
    gpu: str | None = None
    routing: str | None = None


class ScaleBody(msgspec.Struct, forbid_unknown_fields=True):
    replicas: int


class FleetController(Controller):
    path = "/admin/fleet"
    guards = [admin_guard]
    tags = ["fleet"]

    @get("/status")
    async def status(self, state: State, model: FromQuery[str | None] = None) -> dict[str, Any]:
        return await fleet_of(state).pools.status(model)

    @post("/pools", status_code=201)
    async def launch(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[LaunchBody]
    ) -> dict[str, Any]:
        return await fleet_of(state).pools.launch(
            data.model,
            replicas=data.replicas,
            regions=data.regions,
            spot=data.spot,
            provider=data.provider,
            gpu=data.gpu,
            routing=data.routing,
            actor=actor(request),
        )

    @patch("/pools/{model:path}")
    async def scale(
        self,
        request: Request[Any, Any, Any],
        state: State,
        model: FromPath[str],
        data: JSONBody[ScaleBody],
    ) -> dict[str, Any]:
        pools = fleet_of(state).pools
        return await pools.scale(model.lstrip("/"), data.replicas, actor=actor(request))

    @delete("/pools", status_code=200)
    async def down_all(self, request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
        return {"removed": await fleet_of(state).pools.down(None, actor=actor(request))}

    @delete("/pools/{model:path}", status_code=200)
    async def down(
        self, request: Request[Any, Any, Any], state: State, model: FromPath[str]
    ) -> dict[str, Any]:
        pools = fleet_of(state).pools
        return {"removed": await pools.down(model.lstrip("/"), actor=actor(request))}

    @post("/nodes/{node_id:str}/drain", status_code=200)
    async def drain(
        self, request: Request[Any, Any, Any], state: State, node_id: FromPath[str]
    ) -> dict[str, Any]:
        return await fleet_of(state).pools.drain(node_id, actor=actor(request))
