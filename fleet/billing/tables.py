"""Billing tables: hourly usage, credit grants, each tenant's Stripe account, the export
ledger of meter events, processed webhook events, and small job watermarks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.clock import utcnow
from fleet.types import Money, UTCDateTime

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def _ts() -> datetime:
    return Field(default_factory=utcnow, sa_type=UTCDateTime)  # type: ignore[no-any-return]


class UsageHourly(SQLModel, table=True):
    """Usage summed per hour, tenant, environment, key, model and region. Rebuilt from
    ``usage_records`` hour by hour, so a re-run writes the same figures."""

    __tablename__ = "usage_hourly"
    __table_args__ = (Index("ix_usage_hourly_tenant_hour", "tenant_id", "hour"),)

    hour: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    tenant_id: str = Field(max_length=32, primary_key=True)
    environment_id: str = Field(max_length=32, primary_key=True)
    key_id: str = Field(max_length=32, primary_key=True)
    model: str = Field(max_length=128, primary_key=True)
    region: str = Field(max_length=64, primary_key=True)
    requests: int = Field(default=0, sa_type=BigInteger)
    prompt_tokens: int = Field(default=0, sa_type=BigInteger)
    completion_tokens: int = Field(default=0, sa_type=BigInteger)
    cost: Decimal = Field(default=Decimal(0), sa_type=Money)
    gpu_cost: Decimal = Field(default=Decimal(0), sa_type=Money)
    updated_at: datetime = _ts()


class CreditGrant(SQLModel, table=True):
    """Money a tenant may spend before anything is billed (free tier, promotions)."""

    __tablename__ = "credit_grants"

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    tenant_id: str = Field(max_length=32, index=True)
    kind: str = Field(default="promo", max_length=16)  # "free_tier" | "promo"
    amount: Decimal = Field(sa_type=Money)
    note: str = Field(default="", max_length=256)
    granted_by: str = Field(default="", max_length=64)
    created_at: datetime = _ts()


class BillingAccount(SQLModel, table=True):
    """A tenant's Stripe customer and payment standing."""

    __tablename__ = "billing_accounts"

    tenant_id: str = Field(primary_key=True, max_length=32)
    stripe_customer_id: str | None = Field(
        default=None, max_length=64, sa_column_kwargs={"unique": True}
    )
    has_payment_method: bool = False
    delinquent_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    suspended_by_billing: bool = False
    updated_at: datetime = _ts()


class BillingEvent(SQLModel, table=True):
    """One meter event sent (or being sent) to Stripe and Stripe's answer. Written as
    ``pending`` before the call, so a crash mid-call re-sends the same identifier."""

    __tablename__ = "billing_events"
    __table_args__ = (
        UniqueConstraint("identifier", name="uq_billing_event_identifier"),
        Index("ix_billing_events_key", "tenant_id", "meter", "hour"),
    )

    id: int | None = Field(default=None, sa_type=_BIG_ID, primary_key=True)
    tenant_id: str = Field(max_length=32)
    meter: str = Field(max_length=64)
    hour: datetime = Field(sa_type=UTCDateTime)
    seq: int = 0  # 0 for an hour's first export, then one per late correction
    identifier: str = Field(max_length=128)
    value: int = Field(default=0, sa_type=BigInteger)
    credit_applied: Decimal = Field(default=Decimal(0), sa_type=Money)
    status: str = Field(default="pending", max_length=16)  # pending | sent | failed
    attempts: int = 0
    response: str | None = Field(default=None, max_length=2048)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class StripeWebhookEvent(SQLModel, table=True):
    """Stripe events already handled, by id: a replayed delivery does nothing."""

    __tablename__ = "stripe_webhook_events"

    id: str = Field(primary_key=True, max_length=128)
    type: str = Field(max_length=64)
    received_at: datetime = _ts()


class BillingState(SQLModel, table=True):
    """Watermarks of billing jobs (e.g. the last usage record aggregated)."""

    __tablename__ = "billing_state"

    name: str = Field(primary_key=True, max_length=64)
    value: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = _ts()
