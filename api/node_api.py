"""The node API under ``/internal``: what node agents call. Never open: registration needs
the bootstrap token issued for that cluster, everything else the per-node token it returns."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State

from fleet import AuthenticationFailed, Services
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


def bearer(request: Request) -> str:  # type: ignore[type-arg]
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("missing bearer token")
    return token.strip()


def _fleet(state: State):  # type: ignore[no-untyped-def]
    services: Services = state.services
    assert services.fleet is not None
    return services.fleet


class NodeController(Controller):
    path = "/internal"
    tags = ["nodes"]
    include_in_schema = False

    @post("/register", status_code=200)
    async def register(self, request: Request, state: State, data: RegisterBody) -> dict:  # type: ignore[type-arg]
        fleet = _fleet(state)
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
        request: Request,
        state: State,
        node_id: str,
        data: HeartbeatBody,  # type: ignore[type-arg]
    ) -> dict:
        beat = Heartbeat(
            data.healthy, data.running, data.waiting, data.kv_cache, data.agent_version
        )
        node = await _fleet(state).registry.heartbeat(node_id, bearer(request), beat)
        return {"state": str(node.state)}

    @post("/nodes/{node_id:str}/notice", status_code=200)
    async def notice(
        self,
        request: Request,
        state: State,
        node_id: str,
        data: NoticeBody,  # type: ignore[type-arg]
    ) -> dict:
        registry = _fleet(state).registry
        await registry.notice(node_id, bearer(request), kind=data.kind, deadline=data.deadline)
        return {"state": str(registry.get(node_id).state)}

    @post("/nodes/{node_id:str}/draining", status_code=200)
    async def draining(self, request: Request, state: State, node_id: str) -> dict:  # type: ignore[type-arg]
        registry = _fleet(state).registry
        registry.authenticate(node_id, bearer(request))
        node = await registry.begin_drain(node_id, reason="agent stopping")
        return {"state": str(node.state)}

    @post("/nodes/{node_id:str}/deregister", status_code=200)
    async def deregister(self, request: Request, state: State, node_id: str) -> dict:  # type: ignore[type-arg]
        await _fleet(state).registry.deregister(node_id, bearer(request))
        return {"state": "terminated"}
