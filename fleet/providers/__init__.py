"""Where GPU nodes come from: the provider interface and its implementations."""

from fleet.providers.base import (
    CapacityUnavailable,
    ClusterState,
    ClusterStatus,
    LaunchSpec,
    Provider,
    ProviderError,
    ProviderFailure,
)

__all__ = [
    "CapacityUnavailable",
    "ClusterState",
    "ClusterStatus",
    "LaunchSpec",
    "Provider",
    "ProviderError",
    "ProviderFailure",
]
