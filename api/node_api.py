"""The node API under ``/internal``: what node agents call. Never open: registration needs
the bootstrap token issued for that cluster, everything else the per-node token it returns."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api import guards
from fleet import AuthenticationFailed, Services
from fleet.manager import FleetManager
from fleet.registry import Heartbeat, Registration


class RegisterBody(msgspec.Struct):
    cluster: str
    model: str
    url: str
    region: str | None = None
    zone: str | None = None
    spot: bool | None = None
    gpu: str | None = None
    weight: float = 1.0
    agent_version: str | None = None


class HeartbeatBody(msgspec.Struct):
    healthy: bool = True
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0
    agent_version: str | None = None


class NoticeBody(msgspec.Struct):
    kind: str
    deadline: float | None = None


def bearer(request: Request[Any, Any, Any]) -> str:
    token = guards.bearer(request)
    if token is None:
        raise AuthenticationFailed("missing bearer token")
    return token


def fleet_of(state: State) -> FleetManager:
    services: Services = state.services
    assert services.fleet is not None
    return services.fleet


class NodeController(Controller):
    path = "/internal"
    tags = ["nodes"]
    include_in_schema = False

    @post("/register", status_code=200)
    async def register(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[RegisterBody]
    ) -> dict[str, Any]:
        fleet = fleet_of(state)
        info = Registration(
            url=data.url,
            gpu=data.gpu,
            region=data.region,
            zone=data.zone,
            spot=data.spot,
            agent_version=data.agent_version,
            weight=data.weight,
        )
        node, token = await fleet.registry.register(data.cluster, bearer(request), info)
        return {
            "node_id": node.id,
            "node_token": token,
            "heartbeat_interval": fleet.registry.heartbeat_interval,
        }

    @post("/nodes/{node_id:str}/heartbeat", status_code=200)
    async def heartbeat(
        self,
        request: Request[Any, Any, Any],
        state: State,
        node_id: FromPath[str],
        data: JSONBody[HeartbeatBody],
    ) -> dict[str, Any]:
        beat = Heartbeat(
            data.healthy, data.running, data.waiting, data.kv_cache, data.agent_version
        )
        node = await fleet_of(state).registry.heartbeat(node_id, bearer(request), beat)
        return {"state": str(node.state)}

    @post("/nodes/{node_id:str}/notice", status_code=200)
    async def notice(
        self,
        request: Request[Any, Any, Any],
        state: State,
        node_id: FromPath[str],
        data: JSONBody[NoticeBody],
    ) -> dict[str, Any]:
        registry = fleet_of(state).registry
        await registry.notice(node_id, bearer(request), kind=data.kind, deadline=data.deadline)
        return {"state": str(registry.get(node_id).state)}

    @post("/nodes/{node_id:str}/draining", status_code=200)
    async def draining(
        self, request: Request[Any, Any, Any], state: State, node_id: FromPath[str]
    ) -> dict[str, Any]:
        registry = fleet_of(state).registry
        registry.authenticate(node_id, bearer(request))
        node = await registry.begin_drain(node_id, reason="agent stopping")
        return {"state": str(node.state)}

    @post("/nodes/{node_id:str}/deregister", status_code=200)
    async def deregister(
        self, request: Request[Any, Any, Any], state: State, node_id: FromPath[str]
    ) -> dict[str, Any]:
        await fleet_of(state).registry.deregister(node_id, bearer(request))
        return {"state": "terminated"}
