"""cicfleet core: everything the control plane does, importable without a web server.

``api/`` and ``agent/`` use only the names exported here. Names load on first use, so a CLI
command that needs only settings does not pay for the database and HTTP stacks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AuthenticationFailed": "fleet.errors",
    "BodyTooLarge": "fleet.errors",
    "CicError": "fleet.errors",
    "Clock": "fleet.clock",
    "Conflict": "fleet.errors",
    "DEFAULT_ENVIRONMENT": "fleet.tenancy",
    "FakeClock": "fleet.clock",
    "InvalidRequest": "fleet.errors",
    "KeyInfo": "fleet.keys",
    "KeyStatus": "fleet.tables",
    "ModelNotFound": "fleet.errors",
    "NoCapacity": "fleet.errors",
    "NodeState": "fleet.tables",
    "NotFound": "fleet.errors",
    "PermissionDenied": "fleet.errors",
    "QuotaExceeded": "fleet.errors",
    "RateLimited": "fleet.errors",
    "SYSTEM_CLOCK": "fleet.clock",
    "Services": "fleet.services",
    "Settings": "fleet.settings",
    "SettingsError": "fleet.errors",
    "SystemClock": "fleet.clock",
    "TenancyService": "fleet.tenancy",
    "TenantStatus": "fleet.tables",
    "TenantSuspended": "fleet.errors",
    "UpstreamError": "fleet.errors",
    "UpstreamTimeout": "fleet.errors",
    "build_services": "fleet.services",
    "configure_logging": "fleet.logs",
    "get_logger": "fleet.logs",
    "hash_key": "fleet.keys",
    "load_settings": "fleet.settings",
    "request_id_var": "fleet.logs",
    "utcnow": "fleet.clock",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fleet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
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
