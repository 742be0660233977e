"""The database tables (SQLModel): the one source of truth the Alembic migrations in ``sql/``
are checked against.

Enums are stored as short strings, not database enums, so adding a state is a code change
and never a migration that locks a table.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.clock import utcnow
from fleet.types import Money, UTCDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kw)


def _opt_ts(**kw: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kw)


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class NodeState(enum.StrEnum):
    """Lifecycle of a GPU node; legal transitions are enforced by the registry."""

    LAUNCHING = "launching"
    REGISTERING = "registering"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    TERMINATED = "terminated"


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    plan: str = Field(default="free", max_length=32)
    status: str = Field(default=TenantStatus.ACTIVE, max_length=16)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Environment(SQLModel, table=True):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_environment_name"),)

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=32)
    name: str = Field(max_length=64)
    created_at: datetime = _ts()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=32)
    environment_id: str = Field(foreign_key="environments.id", index=True, max_length=32)
    name: str = Field(default="", max_length=128)
    key_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    prefix: str = Field(max_length=24)
    status: str = Field(default=KeyStatus.ACTIVE, max_length=16)
    expires_at: datetime | None = _opt_ts()
    last_used_at: datetime | None = _opt_ts()
    created_at: datetime = _ts()
    revoked_at: datetime | None = _opt_ts()


class Region(SQLModel, table=True):
    __tablename__ = "regions"

    name: str = Field(primary_key=True, max_length=64)
    cloud: str = Field(default="local", max_length=32)
    created_at: datetime = _ts()


class Model(SQLModel, table=True):
    """A served model: the name clients send in ``model``."""

    __tablename__ = "models"

    name: str = Field(primary_key=True, max_length=128)
    context_length: int = Field(default=8192, ge=1)
    default_max_tokens: int = Field(default=1024, ge=1)
    created_at: datetime = _ts()


class ModelPrice(SQLModel, table=True):
    """Price per 1M tokens of a model in a region, valid from ``effective_from`` on; a price
    change adds a row, so past requests keep the price they were served at."""

    __tablename__ = "model_prices"
    __table_args__ = (UniqueConstraint("model", "region", "effective_from", name="uq_model_price"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(foreign_key="models.name", max_length=128)
    region: str = Field(default="*", max_length=64)
    input_per_1m: Decimal = Field(default=Decimal(0), sa_type=Money)
    output_per_1m: Decimal = Field(default=Decimal(0), sa_type=Money)
    effective_from: datetime = _ts()


class Node(SQLModel, table=True):
    """A GPU node (or a static OpenAI-compatible server) that serves one model."""

    __tablename__ = "nodes"

    id: str = Field(primary_key=True, max_length=32)
    model: str = Field(index=True, max_length=128)
    url: str | None = Field(default=None, max_length=512)
    state: str = Field(default=NodeState.LAUNCHING, index=True, max_length=16)
    provider: str = Field(default="static", max_length=32)
    cluster: str | None = Field(default=None, max_length=128, sa_column_kwargs={"unique": True})
    region: str = Field(default="local", max_length=64)
    zone: str | None = Field(default=None, max_length=64)
    spot: bool = False
    gpu: str | None = Field(default=None, max_length=64)
    price_per_hour: Decimal = Field(default=Decimal(0), sa_type=Money)
    token_hash: str | None = Field(default=None, max_length=64)
    agent_version: str | None = Field(default=None, max_length=32)
    last_heartbeat_at: datetime | None = _opt_ts()
    state_changed_at: datetime = _ts(index=True)  # registries refresh what changed since
    drain_deadline: datetime | None = _opt_ts()
    last_error: str | None = Field(default=None, max_length=1024)
    created_at: datetime = _ts()
    # Fleet manager bookkeeping (managed nodes only): the bootstrap token the agent registers
    # with (hashed, scoped to this cluster), reconciler progress, and the last load figures
    # a heartbeat reported (written in batches, so a replica's view lags by a flush).
    bootstrap_hash: str | None = Field(default=None, max_length=64)
    # The key the node's gate asks the gateway for (agent/gate.py), new on every launch
    # attempt. Stored as is: the gateway must send it; never shown by any view.
    engine_key: str | None = Field(default=None, max_length=64)
    phase: str | None = Field(default=None, max_length=32)
    attempts: int = 0
    replaces: str | None = Field(default=None, max_length=32)
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0


class Pool(SQLModel, table=True):
    """Desired state of one model's fleet: the reconciler makes the nodes match it."""

    __tablename__ = "pools"

    model: str = Field(primary_key=True, max_length=128)
    provider: str = Field(default="local", max_length=32)
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    replicas: int = Field(default=1, ge=0)
    spot: bool = True
    gpu: str | None = Field(default=None, max_length=64)
    routing: str = Field(default="least-loaded", max_length=32)
    # The autoscaler's last placements ({"region", "zone", "spot", "count"}); empty when the
    # pool is sized by hand. See fleet/placement.py.
    placements: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class UsageRecord(SQLModel, table=True):
    """One served request as billed: written in batches, off the request path."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_tenant_time", "tenant_id", "created_at"),)

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    request_id: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    tenant_id: str = Field(max_length=32)
    environment_id: str = Field(max_length=32)
    key_id: str = Field(max_length=32)
    model: str = Field(max_length=128)
    region: str = Field(default="local", max_length=64)
    node_id: str | None = Field(default=None, max_length=32)
    endpoint: str = Field(max_length=32)
    stream: bool = False
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    cost: Decimal = Field(default=Decimal(0), sa_type=Money)
    gpu_cost: Decimal = Field(default=Decimal(0), sa_type=Money)  # node price x GPU-seconds
    created_at: datetime = _ts()


class AuditLog(SQLModel, table=True):
    """Who changed what through the admin API, and when."""

    __tablename__ = "audit_logs"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=128)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    request_id: str | None = Field(default=None, sa_type=String(64))


class PlanLimit(SQLModel, table=True):
    """A plan's default limits for one layer (``tenant``, ``environment`` or ``key``) of every
    tenant on the plan; a null figure means no limit from the plan."""

    __tablename__ = "plan_limits"

    plan: str = Field(primary_key=True, max_length=32)
    layer: str = Field(primary_key=True, max_length=16)
    rpm: int | None = Field(default=None, sa_type=BigInteger)
    tpm: int | None = Field(default=None, sa_type=BigInteger)
    rpd: int | None = Field(default=None, sa_type=BigInteger)
    tpd: int | None = Field(default=None, sa_type=BigInteger)
    concurrency: int | None = None
    updated_at: datetime = _ts()


class LimitOverride(SQLModel, table=True):
    """Limits set for one global / tenant / environment / key layer on top of the plan: a null
    figure inherits, -1 lifts the plan's limit. ``target_id`` is ``""`` for the global layer."""

    __tablename__ = "limit_overrides"

    layer: str = Field(primary_key=True, max_length=16)
    target_id: str = Field(primary_key=True, max_length=32)
    rpm: int | None = Field(default=None, sa_type=BigInteger)
    tpm: int | None = Field(default=None, sa_type=BigInteger)
    rpd: int | None = Field(default=None, sa_type=BigInteger)
    tpd: int | None = Field(default=None, sa_type=BigInteger)
    concurrency: int | None = None
    updated_at: datetime = _ts()


metadata = SQLModel.metadata


class PoolScaling(SQLModel, table=True):
    """Autoscaling knobs of one model's pool, set by ``cicfleet scale``; the autoscaler reads
    them every tick, so a change applies without a restart."""

    __tablename__ = "pool_scaling"

    model: str = Field(primary_key=True, max_length=128)
    policy: str | None = Field(default=None, max_length=32)
    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=1, ge=0)
    target: float = Field(default=16.0, gt=0)
    ttft_slo_ms: int = Field(default=2000, ge=1)
    upscale_delay_s: float = Field(default=20.0, ge=0)
    downscale_delay_s: float = Field(default=600.0, ge=0)
    use_spot: bool = True
    base_on_demand: int = Field(default=0, ge=0)
    dynamic_on_demand: bool = True
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts()


class JobRun(SQLModel, table=True):
    """Last run of each scheduled job, as the leader ran it (``cicfleet status --jobs``)."""

    __tablename__ = "job_runs"

    name: str = Field(primary_key=True, max_length=64)
    leader: str | None = Field(default=None, max_length=128)
    runs: int = 0
    failures: int = 0
    last_started_at: datetime | None = _opt_ts()
    last_finished_at: datetime | None = _opt_ts()
    last_ok: bool | None = None
    last_error: str | None = Field(default=None, max_length=1024)
    last_duration_ms: float | None = None


class LeaderLease(SQLModel, table=True):
    """Who leads the control-plane replicas. The lock itself is a PostgreSQL advisory lock;
    this row only tells operators who holds it and since when."""

    __tablename__ = "leader_lease"

    id: int = Field(default=1, primary_key=True)
    holder: str = Field(max_length=128)
    acquired_at: datetime = _ts()
    renewed_at: datetime = _ts()


# Billing tables (usage_hourly, credits, Stripe accounts and exports) live with their code.
from fleet.billing.tables import (  # noqa: E402, F401
    BillingAccount,
    BillingEvent,
    BillingState,
    CreditGrant,
    StripeWebhookEvent,
    UsageHourly,
)


class ScalingDecisionRow(SQLModel, table=True):
    """A decision of the autoscaler as the leader took it, so every replica's console can show
    what the fleet was told to do and why; trimmed to the newest per pool."""

    __tablename__ = "scaling_decisions"
    __table_args__ = (Index("ix_scaling_decisions_model_at", "model", "at"),)

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    model: str = Field(max_length=128)
    at: datetime = _ts()
    desired: int = 0
    target: int = 0
    spot: int = 0
    on_demand: int = 0
    reason: str = Field(default="", max_length=256)
    placements: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser of the web console: the cookie is the token, only its hash is
    stored. ``tenant_id`` is null for an operator (signed in with the admin token)."""

    __tablename__ = "console_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    tenant_id: str | None = Field(default=None, index=True, max_length=32)
    csrf: str = Field(max_length=64)
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)


class ConsoleLoginLink(SQLModel, table=True):
    """A one-time sign-in link for a tenant's console (``cicfleet tenants login-link``)."""

    __tablename__ = "console_login_links"

    token_hash: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=32)
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _opt_ts()
