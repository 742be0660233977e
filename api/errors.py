"""The one place where cicfleet errors become OpenAI's error body.

OpenAI clients pick their exception class from the status code and read
``{"error": {"message", "type", "param", "code"}}``; every error the app returns has that shape.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from fleet import CicError, get_logger

log = get_logger("cicfleet.api")

_ENCODER = msgspec.json.Encoder()


def error_body(err: CicError) -> bytes:
    return _ENCODER.encode(
        {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    )


def error_headers(err: CicError) -> dict[str, str]:
    return {"content-type": "application/json", **err.headers}


def _render(err: CicError) -> Response[bytes]:
    return Response(content=error_body(err), status_code=err.status, headers=error_headers(err))


def handle_cic_error(_: Request[Any, Any, Any], exc: CicError) -> Response[bytes]:
    if exc.status >= 500:
        log.warning("request failed", extra={"status": exc.status, "code": exc.code})
    return _render(exc)


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors (bad JSON, unknown route, wrong method) in OpenAI's shape."""
    err = CicError(exc.detail or "error", code=None)
    err.status = exc.status_code
    if isinstance(exc, ValidationException):
        err.type, err.code = "invalid_request_error", "invalid_request"
        extra = exc.extra if isinstance(exc.extra, list) else []
        if extra and isinstance(extra[0], dict):
            err.param = str(extra[0].get("key") or "") or None
            err.message = f"{exc.detail}: {extra[0].get('message', '')}".strip(": ")
    elif isinstance(exc, NotFoundException):
        err.type, err.code = "invalid_request_error", "not_found"
    elif exc.status_code < 500:
        err.type = "invalid_request_error"
    if exc.headers:
        err.headers.update(exc.headers)
    return _render(err)


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", extra={"error_type": type(exc).__name__})
    return _render(CicError("internal error"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    CicError: handle_cic_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
