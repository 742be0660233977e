"""Sign-in and sign-out pages, and the admin route that makes a tenant's one-time login link."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.console.session import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    check_csrf,
    cleared_cookie,
    console_auth,
    context,
    login_csrf_cookie,
    services,
    session_cookie,
    signed_in,
)
from api.guards import actor, admin_guard
from fleet.admin_token import token_matches
from fleet.logs import get_logger

log = get_logger("cicfleet.console")


def home_of(tenant_id: str | None) -> str:
    return "/console/fleet" if tenant_id is None else f"/console/t/{tenant_id}"


def _login_page(request: Request[Any, Any, Any], *, error: str = "", status: int = 200) -> Template:
    token, cookie = login_csrf_cookie(request)
    return Template(
        template_name="login.html",
        context=context(request, None, login_csrf=token, error=error),
        cookies=[cookie],
        status_code=status,
    )


class SignInPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/")
    async def root(self, request: Request[Any, Any, Any]) -> Redirect:
        who = await console_auth(request.app.state).get(request.cookies.get(COOKIE))
        return Redirect(home_of(who.tenant_id) if who else "/console/login")

    @get("/login")
    async def login_form(self, request: Request[Any, Any, Any]) -> Template:
        return _login_page(request)

    @post("/login", status_code=303)
    async def login(self, request: Request[Any, Any, Any], state: State) -> Redirect | Template:
        """Operators sign in with the admin token (tenants use their one-time link)."""
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        given = str(form.get("_csrf", ""))
        if not expected or not token_matches(given, expected):
            return _login_page(request, error="The form expired; try again.", status=403)
        token = str(form.get("admin_token", "")).strip()
        if not token or not token_matches(token, state.admin_token):
            log.info("console sign-in refused", extra={"who": "operator"})
            return _login_page(request, error="That is not the admin token.", status=401)
        auth = console_auth(state)
        cookie, _ = await auth.start(None)
        ttl = int(services(state).settings.console_session_seconds)
        return Redirect(
            home_of(None), cookies=[session_cookie(request, cookie, ttl)], status_code=303
        )

    @get("/login/link/{token:str}")
    async def redeem(
        self, request: Request[Any, Any, Any], state: State, token: FromPath[str]
    ) -> Redirect:
        cookie, who = await console_auth(state).redeem(token)
        ttl = int(services(state).settings.console_session_seconds)
        log.info("console sign-in", extra={"tenant_id": who.tenant_id})
        return Redirect(
            home_of(who.tenant_id), cookies=[session_cookie(request, cookie, ttl)], status_code=303
        )

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], state: State) -> Redirect:
        who = await signed_in(request)
        form = await request.form()
        check_csrf(request, who, dict(form))
        await console_auth(state).end(request.cookies.get(COOKIE))
        return Redirect("/console/login", cookies=[cleared_cookie(request)], status_code=303)


class LoginLinkController(Controller):
    """``POST /admin/tenants/{tenant}/login-link``: what ``cicfleet tenants login-link`` calls."""

    path = "/admin/tenants"
    guards = [admin_guard]
    tags = ["admin"]

    @post("/{tenant:str}/login-link", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], state: State, tenant: FromPath[str]
    ) -> dict[str, Any]:
        """A one-time console sign-in link for the tenant; the token is shown only here."""
        link = await console_auth(state).login_link(tenant, actor=actor(request))
        path = f"/console/login/link/{link.token}"
        return {
            "tenant_id": link.tenant_id,
            "path": path,
            "url": str(request.base_url).rstrip("/") + path,
            "expires_at": link.expires_at.isoformat(),
        }
