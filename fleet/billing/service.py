"""The billing part of the control plane, built once with the other services: the usage
journal (the gateway's usage sink), the credit gate, pricing, and the leader's billing jobs
(hourly aggregation, Stripe export, dunning)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fleet.billing.aggregation import aggregate, hour_start
from fleet.billing.journal import UsageJournal
from fleet.billing.ledger import UsageShipper
from fleet.billing.pricing import Pricer
from fleet.billing.quota import QuotaGate
from fleet.billing.stripe_export import StripeExporter
from fleet.billing.webhooks import BillingStanding
from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.jobs import JobRegistry
from fleet.metrics import GatewayMetrics
from fleet.settings import Settings
from fleet.tenancy import TenancyService


@dataclass
class Billing:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    journal: UsageJournal
    pricer: Pricer
    quota: QuotaGate
    exporter: StripeExporter
    standing: BillingStanding
    _aggregating: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def aggregate(self, hours: list[datetime] | None = None) -> list[datetime]:
        """Ship journaled usage, then rebuild the touched hours of ``usage_hourly``."""
        async with self._aggregating:
            await self.journal.flush()
            return await aggregate(self.sessions, clock=self.clock, hours=hours or ())

    async def export(self, hour: datetime | None = None) -> dict[str, Any]:
        """Aggregate, then send due meter events (one hour, or every closed hour)."""
        hours = [hour_start(hour)] if hour is not None else None
        await self.aggregate(hours)
        result = await self.exporter.export(hours)
        return result.as_json()

    def register_jobs(self, jobs: JobRegistry) -> None:
        """Aggregation, export and dunning run in the elected leader only."""
        s = self.settings
        if "billing-aggregate" not in jobs:
            jobs.register("billing-aggregate", self.aggregate, every=s.billing_aggregate_seconds)
        if "billing-export" not in jobs:
            jobs.register("billing-export", self.export, every=s.billing_export_seconds)
        if "billing-dunning" not in jobs:
            jobs.register("billing-dunning", self.standing.suspend_overdue, every=300.0)


def build_billing(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tenancy: TenancyService,
    metrics: GatewayMetrics,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> Billing:
    pricer = Pricer(sessions, clock=clock)
    journal = UsageJournal(
        settings.effective_usage_journal_dir,
        UsageShipper(engine, pricer),
        rotate_seconds=settings.usage_flush_seconds,
        segment_events=settings.usage_batch_size,
        fsync=settings.usage_journal_fsync,
        commit_interval=settings.usage_journal_commit_ms / 1000.0,
    )
    quota = QuotaGate(
        sessions,
        enabled=settings.quota_enforced,
        cache_seconds=settings.billing_quota_cache_seconds,
        clock=clock,
    )
    exporter = StripeExporter(
        sessions,
        settings,
        clock=clock,
        on_failure=metrics.billing_export_failures.inc,
    )
    standing = BillingStanding(
        sessions,
        tenancy,
        grace_seconds=settings.billing_dunning_grace_seconds,
        clock=clock,
        on_change=quota.forget,
    )
    return Billing(
        settings=settings,
        sessions=sessions,
        clock=clock,
        journal=journal,
        pricer=pricer,
        quota=quota,
        exporter=exporter,
        standing=standing,
    )
