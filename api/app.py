"""``create_app``: the Litestar application factory. Nothing here reads the environment;
resources are opened in the lifespan and closed after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, asgi
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig

from api.admin import ADMIN_CONTROLLERS
from api.admin_limits import LIMITS_CONTROLLERS
from api.errors import EXCEPTION_HANDLERS
from api.fleet_admin import FleetController
from api.health import health, ready
from api.metrics import metrics
from api.node_api import NodeController, heartbeat
from api.proxy import Gateway
from fleet import Clock, Settings, build_services
from fleet.admin_token import ensure_admin_token
from fleet.clock import SYSTEM_CLOCK
from fleet.leader import leadership


def create_app(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Litestar:
    """Build the app; raises SettingsError at once when the admin token setup is unsafe."""
    admin_token = ensure_admin_token(settings)
    gateway = Gateway()

    @asgi("/v1", is_mount=True, copy_scope=False, include_in_schema=False)
    async def openai_v1(scope: Any, receive: Any, send: Any) -> None:
        """OpenAI API: chat/completions, completions, embeddings, models (api/proxy.py)."""
        await gateway(scope, receive, send)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with build_services(settings, clock=clock) as services:
            app.state.services = services
            app.state.admin_token = admin_token
            await gateway.open(services)
            if services.fleet is not None:
                await services.fleet.start(reconcile=False)  # the leader reconciles (jobs)
            try:
                async with leadership(services):
                    yield
            finally:
                await gateway.close()

    cors = CORSConfig(allow_origins=settings.cors_origins) if settings.cors_origins else None
    return Litestar(
        route_handlers=[
            health,
            ready,
            metrics,
            openai_v1,
            *ADMIN_CONTROLLERS,
            NodeController,
            heartbeat,
            FleetController,
            *LIMITS_CONTROLLERS,
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="cicfleet", version="0.1.0", path="/openapi"),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,  # ours (fleet.logs) stays in force: JSON, no per-request lines
    )
