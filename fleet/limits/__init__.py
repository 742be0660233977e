"""Rate limits and quotas: the interface the gateway calls on every request."""

from fleet.limits.base import Admission, AllowAll, Limiter, LimitRequest

__all__ = ["Admission", "AllowAll", "LimitRequest", "Limiter"]
