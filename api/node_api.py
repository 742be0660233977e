"""The node API under ``/internal``: what node agents call. Never open: registration needs
the bootstrap token issued for that cluster, everything else the per-node token it returns.

Heartbeats are the one frequent call (a fleet of 10,000 nodes at 5 s sends 2,000 a second),
so that route is a bare ASGI handler (msgspec decode, a dict lookup, a hash, a few attribute
writes) like the gateway's hot path; the rare calls are ordinary Litestar handlers."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, asgi, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from api import guards
from api.errors import error_body
from fleet import AuthenticationFailed, CicError, InvalidRequest, Services
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


_HEARTBEAT = msgspec.json.Decoder(HeartbeatBody)
_ENCODE = msgspec.json.Encoder()
_JSON = [(b"content-type", b"application/json")]


@asgi("/internal/heartbeats", is_mount=True, copy_scope=False, include_in_schema=False)
async def heartbeat(scope: Any, receive: Any, send: Any) -> None:
    """``POST /internal/heartbeats/{node_id}`` (node token); answers ``{"state": ...}``."""
    status, body = 200, b""
    try:
        if scope["method"] != "POST":
            raise InvalidRequest("heartbeats are POSTed")
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            data = _HEARTBEAT.decode(b"".join(chunks))
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"invalid heartbeat: {exc}") from None
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                token = rest.strip() if scheme.lower() == "bearer" else None
        if not token:
            raise AuthenticationFailed("missing bearer token")
        registry = fleet_of(scope["app"].state).registry
        beat = Heartbeat(
            data.healthy, data.running, data.waiting, data.kv_cache, data.agent_version
        )
        node_id = scope["path"].strip("/")  # the mount leaves only "/{node_id}"
        node = await registry.heartbeat(node_id, token, beat)
        body = _ENCODE.encode({"state": str(node.state)})
    except CicError as err:
        status, body = err.status, error_body(err)
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


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
