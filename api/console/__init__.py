"""The web console at ``/console``: server-rendered pages (Jinja2) that htmx refreshes in
place, served by the control plane itself, so ``make run`` shows it with no front-end build.

Tenants manage keys and see usage; operators see and steer the fleet. See docs/console.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, Request, Response, Router
from litestar.datastructures import ResponseHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.console.assets import STATIC_DIR, TEMPLATES_DIR, integrity
from api.console.operator_pages import OperatorPages
from api.console.session import Forbidden, NotSignedIn, context
from api.console.sign_in import LoginLinkController, SignInPages
from api.console.tenant_pages import TenantPages
from fleet.errors import CicError
from fleet.node_timeline import NodeTimeline

__all__ = ["CONSOLE_HANDLERS", "console_lifespan", "console_templates"]


def _not_signed_in(request: Request[Any, Any, Any], _: NotSignedIn) -> Response[Any]:
    if request.headers.get("hx-request"):  # a live refresh after the session ended
        return Response(content="", status_code=401, headers={"hx-redirect": "/console/login"})
    return Redirect("/console/login", status_code=303)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, CicError):
        status, message = exc.status, exc.message
    else:
        status = getattr(exc, "status_code", 500)
        message = getattr(exc, "detail", "") or "something went wrong"
    return Template(
        template_name="error.html",
        context=context(request, None, status=status, message=message),
        status_code=status,
    )


CONSOLE_ROUTER = Router(
    path="/console",
    route_handlers=[
        SignInPages,
        TenantPages,
        OperatorPages,
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            include_in_schema=False,
            cache_control=None,
        ),
    ],
    exception_handlers={NotSignedIn: _not_signed_in, Forbidden: _error_page, CicError: _error_page},
    response_headers=[
        # Only our own files run; no framing (clickjacking of the Drain buttons); no referrer
        # leaks a one-time login link to another site.
        ResponseHeader(
            name="content-security-policy",
            value="default-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        ResponseHeader(name="x-frame-options", value="DENY"),
        ResponseHeader(name="referrer-policy", value="no-referrer"),
        ResponseHeader(name="x-content-type-options", value="nosniff"),
    ],
    include_in_schema=False,
)

CONSOLE_HANDLERS: list[Any] = [CONSOLE_ROUTER, LoginLinkController]


def console_templates() -> TemplateConfig[JinjaTemplateEngine]:
    """The console's Jinja2 environment: autoescaped, with the asset integrity helper."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["integrity"] = integrity
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


@contextlib.asynccontextmanager
async def console_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Keep each node's recent story (states, heartbeats, ejections, notices) for the node
    page; runs after the app's own lifespan has put the services on ``app.state``."""
    services = getattr(app.state, "services", None)
    fleet = getattr(services, "fleet", None)
    if fleet is None:
        yield
        return
    timeline = NodeTimeline(fleet.registry, clock=services.clock).attach()  # type: ignore[union-attr]
    app.state.node_timeline = timeline
    task = asyncio.create_task(timeline.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
