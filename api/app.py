"""``create_app``: the Litestar application factory. Nothing here reads the environment;
resources are opened in the lifespan and closed after it."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, asgi
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig

from api.admin import ADMIN_CONTROLLERS
from api.admin_limits import LIMITS_CONTROLLERS
from api.billing_admin import BILLING_ROUTES
from api.console import CONSOLE_HANDLERS, console_lifespan, console_templates
from api.errors import EXCEPTION_HANDLERS
from api.fleet_admin import FleetController
from api.health import health, ready
from api.metrics import metrics
from api.node_api import NodeController, heartbeat
from api.proxy import Gateway
from api.request_id import request_id_middleware
from api.shutdown import GracefulShutdown
from fleet import Clock, Settings, build_services
from fleet.admin_token import ensure_admin_token
from fleet.clock import SYSTEM_CLOCK
from fleet.fleet_metrics import FleetCollector
from fleet.leader import leadership


class ControlPlaneApp(Litestar):
    """Litestar, except that ``/v1/...`` goes straight to the gateway when no CORS is set.

    Litestar's router and exception middleware cost ~10% of the proxy's CPU per request
    (measured with py-spy under bench/gateway_overhead.py) for nothing the gateway uses: it
    renders its own errors and request ids. With CORS configured, ``/v1`` takes the mounted
    route below so Litestar's CORS handling applies.
    """

    openai_fast_path: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        fast = self.openai_fast_path
        if fast is not None and scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scope["path"] = scope["path"][3:]
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, clock: Clock = SYSTEM_CLOCK, handle_signals: bool = False
) -> Litestar:
    """Build the app; raises SettingsError at once when the admin token setup is unsafe.

    ``handle_signals`` (``cicfleet serve``) makes SIGTERM a graceful shutdown (api/shutdown.py).
    """
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
                await services.fleet.start()
            # Everything loaded so far lives as long as the process: keep the collector from
            # walking it again and again (measured: ~20% of the proxy's CPU per request).
            gc.collect()
            gc.freeze()
            try:
                async with leadership(services) as elector:
                    if services.fleet is not None:
                        app.state.fleet_metrics = FleetCollector(
                            services.fleet.registry,
                            services.sessions,
                            is_leader=lambda: elector.is_leader,
                            clock=services.clock,
                        ).register(services.metrics.registry)
                    shutdown = GracefulShutdown(
                        grace_seconds=settings.shutdown_grace_seconds,
                        step_down=elector.stop,
                        in_flight=lambda: gateway.in_flight,
                        cut=gateway.cut,
                    )
                    if handle_signals:
                        shutdown.install()
                    try:
                        yield
                    finally:
                        await shutdown.close()
            finally:
                await gateway.close()

    cors = CORSConfig(allow_origins=settings.cors_origins) if settings.cors_origins else None
    app = ControlPlaneApp(
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
            *BILLING_ROUTES,
            *CONSOLE_HANDLERS,
        ],
        template_config=console_templates(),
        lifespan=[lifespan, console_lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_id_middleware],
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="cicfleet", version="0.1.0", path="/openapi"),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,  # ours (fleet.logs) stays in force: JSON, no per-request lines
    )
    if cors is None:
        app.openai_fast_path = gateway
    return app
