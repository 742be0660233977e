"""The console's sign-in cookie, CSRF checks and the page context every template gets."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie, State
from litestar.exceptions import HTTPException

from fleet import Services
from fleet.console_auth import ConsoleAuth, SignedIn

COOKIE = "cic_console"
LOGIN_CSRF_COOKIE = "cic_console_login"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"


class NotSignedIn(HTTPException):
    """No live console session: pages redirect to the sign-in page."""

    status_code = 401


class Forbidden(HTTPException):
    """Signed in, but this page belongs to someone else."""

    status_code = 403


def services(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


def console_auth(state: State) -> ConsoleAuth:
    svc = services(state)
    return ConsoleAuth(
        svc.sessions,
        clock=svc.clock,
        session_seconds=svc.settings.console_session_seconds,
        link_seconds=svc.settings.console_link_seconds,
    )


def over_tls(request: Request[Any, Any, Any]) -> bool:
    """TLS at this server or at the proxy in front of it (``X-Forwarded-Proto``)."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def session_cookie(request: Request[Any, Any, Any], token: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=token,
        path="/console",
        httponly=True,
        secure=over_tls(request),
        samesite="lax",
        max_age=max_age,
    )


def cleared_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return Cookie(
        key=COOKIE,
        value="",
        path="/console",
        httponly=True,
        secure=over_tls(request),
        samesite="lax",
        max_age=0,
    )


def login_csrf_cookie(request: Request[Any, Any, Any]) -> tuple[str, Cookie]:
    """A fresh double-submit token for the sign-in form (there is no session yet)."""
    token = secrets.token_urlsafe(24)
    return token, Cookie(
        key=LOGIN_CSRF_COOKIE,
        value=token,
        path="/console",
        httponly=True,
        secure=over_tls(request),
        samesite="lax",
        max_age=3600,
    )


async def signed_in(request: Request[Any, Any, Any]) -> SignedIn:
    """The request's live session, or :class:`NotSignedIn`."""
    who = await console_auth(request.app.state).get(request.cookies.get(COOKIE))
    if who is None:
        raise NotSignedIn(detail="sign in to the console")
    return who


async def operator(request: Request[Any, Any, Any]) -> SignedIn:
    who = await signed_in(request)
    if not who.operator:
        raise Forbidden(detail="operators only")
    return who


async def for_tenant(request: Request[Any, Any, Any], tenant_id: str) -> SignedIn:
    who = await signed_in(request)
    if not who.may_see(tenant_id):
        raise Forbidden(detail="this page belongs to another tenant")
    return who


def check_csrf(request: Request[Any, Any, Any], who: SignedIn, form: dict[str, Any]) -> None:
    """Every state-changing form carries the session's CSRF token (field or htmx header)."""
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not who.csrf_ok(given if isinstance(given, str) else None):
        raise Forbidden(detail="the form expired or came from another site; reload the page")


def context(request: Request[Any, Any, Any], who: SignedIn | None, **extra: Any) -> dict[str, Any]:
    return {"who": who, "csrf": who.csrf if who else "", "path": request.url.path, **extra}
