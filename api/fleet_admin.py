"""Admin routes of the fleet: pools (launch, scale, down), node drain, status."""

from __future__ import annotations

import hmac

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler

from api.node_api import bearer
from fleet import AuthenticationFailed, Services


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Bearer ``CIC_ADMIN_TOKEN`` (or the token an embedded control plane wrote)."""
    services: Services = connection.app.state.services
    settings = services.settings
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if expected is None and settings.admin_token_file.exists():
        expected = settings.admin_token_file.read_text().strip() or None
    token = bearer(connection)  # type: ignore[arg-type]
    if expected is None or not hmac.compare_digest(expected.encode(), token.encode()):
        raise AuthenticationFailed("invalid admin token")


class LaunchBody(msgspec.Struct):
    model: str
    replicas: int = 1
    regions: list[str] | None = None
    spot: bool = True
    provider: str = "local"
    gpu: str | None = None
    routing: str | None = None


class ScaleBody(msgspec.Struct):
    replicas: int


def _pools(state: State):  # type: ignore[no-untyped-def]
    services: Services = state.services
    assert services.fleet is not None
    return services.fleet.pools


class FleetController(Controller):
    path = "/admin/fleet"
    guards = [admin_guard]
    tags = ["fleet"]

    @get("/status")
    async def status(self, state: State, model: str | None = None) -> dict:
        return await _pools(state).status(model)

    @post("/pools", status_code=201)
    async def launch(self, state: State, data: LaunchBody) -> dict:
        return await _pools(state).launch(
            data.model,
            replicas=data.replicas,
            regions=data.regions,
            spot=data.spot,
            provider=data.provider,
            gpu=data.gpu,
            routing=data.routing,
            actor="admin",
        )

    @patch("/pools/{model:path}")
    async def scale(self, state: State, model: str, data: ScaleBody) -> dict:
        return await _pools(state).scale(model.lstrip("/"), data.replicas, actor="admin")

    @delete("/pools", status_code=200)
    async def down_all(self, state: State) -> dict:
        return {"removed": await _pools(state).down(None, actor="admin")}

    @delete("/pools/{model:path}", status_code=200)
    async def down(self, state: State, model: str) -> dict:
        return {"removed": await _pools(state).down(model.lstrip("/"), actor="admin")}

    @post("/nodes/{node_id:str}/drain", status_code=200)
    async def drain(self, state: State, node_id: str) -> dict:
        return await _pools(state).drain(node_id, actor="admin")
