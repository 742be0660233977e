"""Hourly usage to Stripe Billing Meter events.

For every closed hour (``CIC_BILLING_EXPORT_DELAY_SECONDS`` after its end, within
``CIC_BILLING_EXPORT_LOOKBACK_HOURS``) and every tenant with usage in it, three meters get the
hour's whole-number totals from ``usage_hourly``:

* ``<prefix>_input_tokens`` and ``<prefix>_output_tokens``: tokens, so Stripe's figures and
  ours agree to the token;
* ``<prefix>_billable_microusd``: what the hour costs after credits, in millionths of a
  dollar (the meter's price in Stripe is $0.000001 a unit). Rounded on cumulative totals, so
  rounding never drifts over many hours.

Idempotency: each event is first written to ``billing_events`` as ``pending`` with an
``identifier`` ``<tenant>:<meter>:<hour>:<seq>``, then sent, then marked ``sent`` with Stripe's
answer. A re-run sends only the difference between the hour's total and what ``billing_events``
already holds, and re-sends a pending or failed row with its original identifier, which Stripe
deduplicates: a re-run is never billed twice, and a row that arrives late is billed as a
correction (``seq`` 1, 2, ...). Stripe allows one concurrent meter call per customer and
meter, so a tenant's events are sent one after another, with backoff on 429.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.billing.aggregation import HOUR, hour_start
from fleet.billing.credits import credit_cover
from fleet.billing.tables import BillingAccount, BillingEvent, CreditGrant, UsageHourly
from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.logs import get_logger
from fleet.settings import Settings

log = get_logger("cicfleet.billing")

MICRO = Decimal(1_000_000)
_ZERO = Decimal(0)
_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)


def stripe_client(settings: Settings) -> Any:
    """A StripeClient on httpx (so tests intercept it with respx), at CIC_STRIPE_API_BASE."""
    import stripe

    assert settings.stripe_api_key is not None
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses=base,  # type: ignore[arg-type]
        http_client=stripe.HTTPXClient(timeout=30),
        max_network_retries=0,  # retries are ours: same identifier, backoff on 429
    )


@dataclass
class ExportResult:
    hours: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    skipped_tenants: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "hours": self.hours,
            "sent": self.sent,
            "failed": self.failed,
            "skipped_tenants": self.skipped_tenants,
        }


def _units(amount: Decimal) -> int:
    return int((amount * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class StripeExporter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        client: Any = None,
        clock: Clock = SYSTEM_CLOCK,
        on_failure: Any = None,
        sleep: Any = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = client
        self._clock = clock
        self._on_failure = on_failure or (lambda: None)
        self._sleep = sleep
        p = settings.billing_meter_prefix
        self.meters = (f"{p}_input_tokens", f"{p}_output_tokens", f"{p}_billable_microusd")
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return self._client is not None or self._settings.stripe_api_key is not None

    def client(self) -> Any:
        if self._client is None:
            self._client = stripe_client(self._settings)
        return self._client

    def closed_hours(self) -> list[datetime]:
        """Hours whose export is due: ended at least the export delay ago, in the lookback."""
        now = utcnow(self._clock)
        last = hour_start(now - timedelta(seconds=self._settings.billing_export_delay_seconds))
        last -= HOUR  # the hour that contains now-delay is not closed yet
        first = last - HOUR * (self._settings.billing_export_lookback_hours - 1)
        return [first + HOUR * i for i in range(int((last - first) / HOUR) + 1)]

    async def export(self, hours: list[datetime] | None = None) -> ExportResult:
        """Send what is due for ``hours`` (every closed hour in the lookback by default)."""
        result = ExportResult()
        if not self.configured:
            log.info("stripe export skipped: CIC_STRIPE_API_KEY is not set")
            return result
        async with self._lock:
            hours = sorted(hour_start(h) for h in (hours or self.closed_hours()))
            result.hours = [h.isoformat() for h in hours]
            tenants = await self._tenants_with_usage(hours)
            # One task per tenant (its events in order); tenants in parallel, a few at once.
            gate = asyncio.Semaphore(4)

            async def one(tenant: str) -> None:
                async with gate:
                    await self._export_tenant(tenant, hours, result)

            await asyncio.gather(*(one(t) for t in sorted(tenants)))
        return result

    async def _tenants_with_usage(self, hours: list[datetime]) -> set[str]:
        if not hours:
            return set()
        async with self._sessions() as s:
            q = select(UsageHourly.tenant_id).where(UsageHourly.hour.in_(hours)).distinct()
            return set((await s.execute(q)).scalars())

    async def ensure_customer(self, tenant_id: str) -> str:
        """The tenant's Stripe customer id, created (idempotently) on first need."""
        async with self._sessions() as s:
            account = await s.get(BillingAccount, tenant_id)
            if account is not None and account.stripe_customer_id:
                return account.stripe_customer_id
        customer = await self.client().v1.customers.create_async(
            params={"metadata": {"tenant_id": tenant_id}, "description": f"tenant {tenant_id}"},
            options={"idempotency_key": f"cic-customer-{tenant_id}"},
        )
        async with self._sessions() as s:
            account = await s.get(BillingAccount, tenant_id) or BillingAccount(tenant_id=tenant_id)
            account.stripe_customer_id = customer.id
            account.updated_at = utcnow(self._clock)
            s.add(account)
            await s.commit()
        log.info("stripe customer created", extra={"tenant": tenant_id})
        return str(customer.id)

    async def _targets(self, tenant_id: str, hour: datetime) -> dict[str, tuple[int, Decimal]]:
        """Each meter's total for the hour, and the credit that covered the hour."""
        async with self._sessions() as s:
            rows = (
                await s.execute(
                    select(
                        UsageHourly.hour,
                        UsageHourly.prompt_tokens,
                        UsageHourly.completion_tokens,
                        UsageHourly.cost,
                    ).where(UsageHourly.tenant_id == tenant_id, UsageHourly.hour <= hour)
                )
            ).all()
            grants = (
                await s.execute(
                    select(CreditGrant.amount).where(CreditGrant.tenant_id == tenant_id)
                )
            ).scalars()
            granted = sum(grants, _ZERO)
        before = now = _ZERO
        prompt = completion = 0
        for h, p, c, cost in rows:
            if h < hour:
                before += cost
            else:
                prompt += p
                completion += c
                now += cost
        now += before
        covered = credit_cover(before, now, granted)
        billable_units = _units(now - min(now, granted)) - _units(before - min(before, granted))
        inp, out, amount = self.meters
        return {inp: (prompt, _ZERO), out: (completion, _ZERO), amount: (billable_units, covered)}

    async def _export_tenant(self, tenant_id: str, hours: list[datetime], r: ExportResult) -> None:
        try:
            customer = await self.ensure_customer(tenant_id)
        except Exception as exc:
            r.failed += 1
            r.skipped_tenants.append(tenant_id)
            self._on_failure()
            log.warning(
                "stripe customer creation failed",
                extra={"tenant": tenant_id, "error": type(exc).__name__},
            )
            return
        for hour in hours:
            targets = await self._targets(tenant_id, hour)
            for meter, (total, covered) in targets.items():
                for event in await self._due(tenant_id, meter, hour, total, covered):
                    ok = await self._send(event, customer)
                    r.sent += ok
                    r.failed += not ok

    async def _due(
        self, tenant_id: str, meter: str, hour: datetime, total: int, covered: Decimal
    ) -> list[BillingEvent]:
        """Rows to send: earlier pending/failed ones again, plus one for a new difference."""
        async with self._sessions() as s:
            q = (
                select(BillingEvent)
                .where(
                    BillingEvent.tenant_id == tenant_id,
                    BillingEvent.meter == meter,
                    BillingEvent.hour == hour,
                )
                .order_by(BillingEvent.seq)
            )
            rows = list((await s.execute(q)).scalars())
            due = [e for e in rows if e.status != "sent"]
            recorded = sum(e.value for e in rows)
            delta = total - recorded
            if delta > 0:
                seq = len(rows)
                credit = covered - sum((e.credit_applied for e in rows), _ZERO)
                event = BillingEvent(
                    tenant_id=tenant_id,
                    meter=meter,
                    hour=hour,
                    seq=seq,
                    identifier=f"{tenant_id}:{meter}:{hour:%Y%m%dT%H}:{seq}",
                    value=delta,
                    credit_applied=max(credit, _ZERO),
                )
                s.add(event)
                await s.commit()
                await s.refresh(event)
                due.append(event)
            elif delta < 0:
                log.warning(
                    "hour total below what was exported",
                    extra={"tenant": tenant_id, "meter": meter, "hour": hour.isoformat()},
                )
        return due

    async def _send(self, event: BillingEvent, customer: str) -> bool:
        import stripe

        params = {
            "event_name": event.meter,
            "identifier": event.identifier,
            "timestamp": int(event.hour.astimezone(UTC).timestamp()),
            "payload": {"stripe_customer_id": customer, "value": str(event.value)},
        }
        answer: str
        ok = False
        for attempt, pause in enumerate((*_BACKOFF, None)):
            try:
                created = await self.client().v1.billing.meter_events.create_async(params=params)
                answer, ok = f"ok {created.identifier}", True
                break
            except stripe.RateLimitError:
                answer = "429 rate limited"
                if pause is None:
                    break
                await self._sleep(pause * (1 + attempt * 0.1))
            except stripe.StripeError as exc:
                answer = f"{exc.http_status or ''} {exc.code or type(exc).__name__}: {exc}"
                break
            except Exception as exc:
                answer = f"{type(exc).__name__}: {exc}"
                break
        async with self._sessions() as s:
            row = await s.get(BillingEvent, event.id)
            assert row is not None
            row.status = "sent" if ok else "failed"
            row.attempts += 1
            row.response = answer[:2048]
            row.updated_at = utcnow(self._clock)
            await s.commit()
        if not ok:
            self._on_failure()
            log.warning(
                "stripe meter event failed",
                extra={"identifier": event.identifier, "answer": answer[:200]},
            )
        return ok


async def exported_totals(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str
) -> dict[str, int]:
    """What Stripe was sent for a tenant, per meter (sent rows only)."""
    async with sessions() as s:
        q = (
            select(BillingEvent.meter, func.sum(BillingEvent.value))
            .where(BillingEvent.tenant_id == tenant_id, BillingEvent.status == "sent")
            .group_by(BillingEvent.meter)
        )
        return {m: int(v) for m, v in (await s.execute(q)).all()}
