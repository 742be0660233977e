"""The one error tree of cicfleet.

Every error a client or operator can see derives from :class:`CicError` and carries its HTTP
status and OpenAI ``type``/``code``, so ``api/`` maps all of them to OpenAI's error body in one
place and the official ``openai`` client raises the exception OpenAI itself would::

    CicError (500 api_error)
    ├── SettingsError            bad CIC_* value at start (never reaches HTTP)
    ├── InvalidRequest (400)     the caller must change the request
    │   ├── BodyTooLarge (413)
    │   └── Conflict (409)       admin: the thing already exists
    │       └── IllegalTransition  a node state change the registry's table forbids
    ├── AuthenticationFailed (401)
    ├── PermissionDenied (403)
    │   └── TenantSuspended
    ├── NotFound (404)
    │   └── ModelNotFound
    ├── RateLimited (429)        retry after ``retry_after`` seconds
    │   └── QuotaExceeded        daily quota or credit gone: retrying soon will not help
    ├── NoCapacity (503)         no node serves the model right now; retry later
    │   └── LimitsUnavailable    Redis is down and limits fail closed
    └── UpstreamError (502)      a GPU node failed
        └── UpstreamTimeout (504)
"""

from __future__ import annotations


class CicError(Exception):
    """Base of every cicfleet error; carries what the HTTP edge needs to render it."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


class SettingsError(CicError):
    """Raised when a ``CIC_*`` variable is missing or malformed."""


class InvalidRequest(CicError):
    """Raised when the request is malformed; resending it unchanged fails again."""

    status = 400
    type = "invalid_request_error"


class BodyTooLarge(InvalidRequest):
    """Raised when the request body exceeds ``CIC_MAX_BODY_BYTES``."""

    status = 413
    code = "request_too_large"


class Conflict(InvalidRequest):
    """Raised when an admin call would create something that already exists."""

    status = 409
    code = "conflict"


class IllegalTransition(Conflict):
    """Raised when a node state change is not in the registry's transition table."""

    code = "illegal_transition"


class AuthenticationFailed(CicError):
    """Raised when the API key or token is missing, unknown, expired or revoked."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(CicError):
    """Raised when the caller is known but not allowed to do this."""

    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class TenantSuspended(PermissionDenied):
    """Raised when the key's tenant is suspended (by an operator or for non-payment)."""

    code = "tenant_suspended"


class NotFound(CicError):
    """Raised when the addressed resource does not exist."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    """Raised when no model of that name is configured."""

    code = "model_not_found"


class RateLimited(CicError):
    """Raised when a rate limit is hit; the client should retry after ``retry_after`` s."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.headers.setdefault("retry-after", str(max(1, round(retry_after + 0.499))))


class QuotaExceeded(RateLimited):
    """Raised when a daily quota or the tenant's credit is exhausted."""

    type = "insufficient_quota"
    code = "insufficient_quota"


class NoCapacity(CicError):
    """Raised when no ready node serves the model; capacity may come, so retry later."""

    status = 503
    type = "api_error"
    code = "no_capacity"

    def __init__(self, message: str, *, retry_after: float = 5.0, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.headers.setdefault("retry-after", str(max(1, round(retry_after + 0.499))))


class LimitsUnavailable(NoCapacity):
    """Raised when the limits store is down and ``CIC_LIMITS_ON_REDIS_ERROR=closed``."""

    code = "limits_unavailable"


class UpstreamError(CicError):
    """Raised when a GPU node failed the request and no retry was possible."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """Raised when a GPU node did not answer within ``CIC_UPSTREAM_TIMEOUT``."""

    status = 504
    code = "upstream_timeout"
