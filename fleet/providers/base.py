"""The provider interface: how the fleet manager asks a cloud (or this machine) for nodes.

A provider owns clusters named by the fleet manager (names are deterministic, derived from the
node id, so a restarted control plane finds what it launched instead of launching again). One
cluster runs one node: vLLM (or the simulator) plus the node agent, which registers itself with
the control plane using the bootstrap token in ``LaunchSpec.secrets``.

Errors say how the caller should react:

    ProviderError
    ├── CapacityUnavailable   no capacity there now: try another zone/region/on-demand
    └── ProviderFailure       credentials, quota, bad spec: an operator must act
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from fleet.errors import CicError


class ProviderError(CicError):
    """Base of errors raised by providers."""

    status = 503
    code = "provider_error"


class CapacityUnavailable(ProviderError):
    """Raised when the requested resources are not available where asked; ``tried`` lists the
    (cloud, region, zone) places that failed so the caller can pick elsewhere."""

    code = "capacity_unavailable"

    def __init__(self, message: str, *, tried: Sequence[str] = (), **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.tried = list(tried)


class ProviderFailure(ProviderError):
    """Raised when retrying elsewhere will not help (no credentials, quota, invalid task)."""

    code = "provider_failure"


class ClusterState(enum.StrEnum):
    PENDING = "pending"  # launch requested, not up yet
    UP = "up"
    STOPPED = "stopped"  # e.g. a preempted spot instance that the cloud stopped
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """One node to launch. ``secrets`` (the bootstrap token) must never be logged or written."""

    node_id: str
    cluster: str
    model: str
    region: str
    zone: str | None = None
    spot: bool = True
    gpu: str | None = None
    envs: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    cluster: str
    state: ClusterState
    region: str | None = None
    zone: str | None = None
    spot: bool | None = None
    price_per_hour: Decimal | None = None
    error: str | None = None


@runtime_checkable
class Provider(Protocol):
    """A source of nodes. Every method is safe to call again after a crash (idempotent)."""

    name: str

    async def launch(self, spec: LaunchSpec) -> ClusterStatus:
        """Start the cluster ``spec.cluster`` (or return it if it exists already)."""
        ...

    async def terminate(self, cluster: str) -> None:
        """Tear the cluster down; a cluster that is already gone is not an error."""
        ...

    async def status(self) -> list[ClusterStatus]:
        """Every cluster of ours this provider knows (clusters gone from it are absent)."""
        ...
