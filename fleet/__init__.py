"""cicfleet core: everything the control plane does, importable without a web server.

``api/`` and ``agent/`` use only the names exported here.
"""

from fleet.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock, utcnow
from fleet.errors import (
    AuthenticationFailed,
    BodyTooLarge,
    CicError,
    Conflict,
    InvalidRequest,
    ModelNotFound,
    NoCapacity,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    SettingsError,
    TenantSuspended,
    UpstreamError,
    UpstreamTimeout,
)
from fleet.keys import KeyInfo, hash_key
from fleet.logs import configure_logging, get_logger, request_id_var
from fleet.services import Services, build_services
from fleet.settings import Settings, load_settings
from fleet.tables import KeyStatus, NodeState, TenantStatus
from fleet.tenancy import DEFAULT_ENVIRONMENT, TenancyService

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "SYSTEM_CLOCK",
    "AuthenticationFailed",
    "BodyTooLarge",
    "CicError",
    "Clock",
    "Conflict",
    "FakeClock",
    "InvalidRequest",
    "KeyInfo",
    "KeyStatus",
    "ModelNotFound",
    "NoCapacity",
    "NodeState",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "Services",
    "Settings",
    "SettingsError",
    "SystemClock",
    "TenancyService",
    "TenantStatus",
    "TenantSuspended",
    "UpstreamError",
    "UpstreamTimeout",
    "build_services",
    "configure_logging",
    "get_logger",
    "hash_key",
    "load_settings",
    "request_id_var",
    "utcnow",
]
