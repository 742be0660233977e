"""Guards: who may call which part of the API."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from fleet import AuthenticationFailed
from fleet.admin_token import token_matches


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    value = connection.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Only the holder of the admin token reaches ``/admin``."""
    token = bearer(connection)
    expected: str = connection.app.state.admin_token
    if token is None or not token_matches(token, expected):
        raise AuthenticationFailed("a valid admin token is required", code="invalid_admin_token")


def actor(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The name recorded in audit rows: the CLI sends its user as ``x-cic-actor``."""
    return (connection.headers.get("x-cic-actor") or "admin")[:64]
