"""Stripe webhook events: verified, handled once each, turned into tenant standing.

* ``invoice.paid``: the tenant pays; its payment standing is good again, and a tenant that
  billing suspended is restored.
* ``invoice.payment_failed``: the tenant is delinquent from now; it is suspended once
  ``CIC_BILLING_DUNNING_GRACE_SECONDS`` pass without a paid invoice (at once with grace 0).
* ``customer.subscription.deleted``: no payment method any more: the tenant is served on its
  credit only.
* ``payment_method.attached``: a payment method is on file.

Signatures are checked by ``stripe.Webhook.construct_event`` with its default tolerance, so
unsigned, forged and stale deliveries are refused; a delivery of an event id already handled
(Stripe retries, or a replay) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.billing.tables import BillingAccount, StripeWebhookEvent
from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.errors import InvalidRequest, NotFound
from fleet.logs import get_logger
from fleet.tables import TenantStatus
from fleet.tenancy import TenancyService

log = get_logger("cicfleet.billing")
_ACTOR = "billing"
HANDLED = (
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.deleted",
    "payment_method.attached",
)


class WebhookSignatureInvalid(InvalidRequest):
    """A delivery Stripe did not sign with our secret, or signed too long ago."""

    code = "invalid_signature"


def verify(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The Stripe event in ``payload`` if its signature is valid and fresh; raises otherwise."""
    import stripe

    if not signature:
        raise WebhookSignatureInvalid("missing Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise WebhookSignatureInvalid("invalid or stale Stripe signature") from None
    except ValueError:
        raise InvalidRequest("webhook body is not a Stripe event") from None
    return event.to_dict()  # plain dicts all the way down


class BillingStanding:
    """Payment standing of tenants: what webhooks and the dunning job change."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tenancy: TenancyService,
        *,
        grace_seconds: float,
        clock: Clock = SYSTEM_CLOCK,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._tenancy = tenancy
        self._grace = timedelta(seconds=grace_seconds)
        self._clock = clock
        self._on_change = on_change or (lambda tenant: None)

    async def handle(self, event: Any) -> str:
        """Apply one verified event; returns ``handled``, ``duplicate`` or ``ignored``."""
        event_id, kind = str(event["id"]), str(event["type"])
        async with self._sessions() as s:
            s.add(StripeWebhookEvent(id=event_id, type=kind[:64]))
            try:
                await s.commit()
            except IntegrityError:
                return "duplicate"
        if kind not in HANDLED:
            return "ignored"
        obj = event["data"]["object"]
        tenant = await self._tenant_of(obj)
        if tenant is None:
            log.warning("stripe event for an unknown customer", extra={"type": kind})
            return "ignored"
        if kind == "invoice.paid":
            await self._paid(tenant)
        elif kind == "invoice.payment_failed":
            await self._payment_failed(tenant)
        elif kind == "customer.subscription.deleted":
            await self._update(tenant, has_payment_method=False)
        elif kind == "payment_method.attached":
            await self._update(tenant, has_payment_method=True)
        log.info("stripe event handled", extra={"type": kind, "tenant": tenant})
        return "handled"

    async def _tenant_of(self, obj: Any) -> str | None:
        customer = obj.get("customer")
        if customer:
            async with self._sessions() as s:
                q = select(BillingAccount.tenant_id).where(
                    BillingAccount.stripe_customer_id == customer
                )
                tenant = (await s.execute(q)).scalar()
                if tenant:
                    return str(tenant)
        metadata = obj.get("metadata") or {}
        return metadata.get("tenant_id") or None

    async def _update(self, tenant_id: str, **changes: Any) -> BillingAccount:
        async with self._sessions() as s:
            account = await s.get(BillingAccount, tenant_id) or BillingAccount(tenant_id=tenant_id)
            for name, value in changes.items():
                setattr(account, name, value)
            account.updated_at = utcnow(self._clock)
            s.add(account)
            await s.commit()
        self._on_change(tenant_id)
        return account

    async def _paid(self, tenant_id: str) -> None:
        async with self._sessions() as s:
            before = await s.get(BillingAccount, tenant_id)
            restore = before is not None and before.suspended_by_billing
        await self._update(
            tenant_id, has_payment_method=True, delinquent_since=None, suspended_by_billing=False
        )
        if restore:
            await self._tenancy.set_tenant_status(tenant_id, TenantStatus.ACTIVE, actor=_ACTOR)
            log.info("tenant restored after payment", extra={"tenant": tenant_id})

    async def _payment_failed(self, tenant_id: str) -> None:
        async with self._sessions() as s:
            account = await s.get(BillingAccount, tenant_id)
            since = account.delinquent_since if account is not None else None
        await self._update(tenant_id, delinquent_since=since or utcnow(self._clock))
        await self.suspend_overdue()

    async def suspend_overdue(self) -> list[str]:
        """Suspend tenants delinquent for longer than the grace (the dunning job)."""
        cutoff = utcnow(self._clock) - self._grace
        async with self._sessions() as s:
            q = select(BillingAccount).where(
                BillingAccount.delinquent_since.is_not(None),  # type: ignore[union-attr]
                BillingAccount.delinquent_since <= cutoff,  # type: ignore[operator]
                BillingAccount.suspended_by_billing.is_(False),  # type: ignore[attr-defined]
            )
            overdue = [a.tenant_id for a in (await s.execute(q)).scalars()]
        suspended = []
        for tenant_id in overdue:
            try:
                tenant = await self._tenancy.get_tenant(tenant_id)
            except NotFound:
                continue  # deleted meanwhile
            if tenant.status == TenantStatus.ACTIVE:
                await self._tenancy.set_tenant_status(
                    tenant_id, TenantStatus.SUSPENDED, actor=_ACTOR
                )
                await self._update(tenant_id, suspended_by_billing=True)
                suspended.append(tenant_id)
                log.warning("tenant suspended for non-payment", extra={"tenant": tenant_id})
        return suspended
