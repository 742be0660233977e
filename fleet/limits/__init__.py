"""Rate limits and quotas: four layers (global, tenant, environment, key), each with requests
and tokens per minute and per day and concurrent requests, checked and reserved atomically.
See docs/limits.md."""

from fleet.limits.base import Admission, Limiter, LimitRequest
from fleet.limits.factory import build_limiter
from fleet.limits.limiter import LayeredLimiter
from fleet.limits.model import UNLIMITED, Kind, Layer, LimitFigures, Limits
from fleet.limits.resolver import LimitResolver
from fleet.limits.service import FIGURES, LimitsService

__all__ = [
    "FIGURES",
    "UNLIMITED",
    "Admission",
    "Kind",
    "Layer",
    "LayeredLimiter",
    "LimitFigures",
    "LimitRequest",
    "LimitResolver",
    "Limiter",
    "Limits",
    "LimitsService",
    "build_limiter",
]
