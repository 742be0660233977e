"""The credit gate on the request path: a tenant with no credit left and no payment method
gets 429 ``insufficient_quota`` (OpenAI's code, which its clients surface as such).

Enforced only when billing is configured (``CIC_BILLING_ENFORCE_QUOTA``, by default when
``CIC_STRIPE_API_KEY`` is set), so an embedded or demo control plane serves without one.
Answers are cached per tenant for ``CIC_BILLING_QUOTA_CACHE_SECONDS``: the request path does
a database read at most that often per tenant, and a tenant may overrun its credit by that
much usage (it is then billed, never lost).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.billing.credits import granted_and_spent
from fleet.billing.tables import BillingAccount
from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.errors import QuotaExceeded

_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details: "
    "your credit is used up and no payment method is on file."
)


class QuotaGate:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        enabled: bool,
        cache_seconds: float = 15.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self.enabled = enabled
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, bool]] = {}

    async def check(self, tenant_id: str) -> None:
        """Raise :class:`QuotaExceeded` when the tenant may not be served."""
        if not self.enabled:
            return
        now = self._clock.monotonic()
        hit = self._cache.get(tenant_id)
        if hit is None or hit[0] <= now:
            allowed = await self.allowed(tenant_id)
            self._cache[tenant_id] = (now + self._ttl, allowed)
        else:
            allowed = hit[1]
        if not allowed:
            raise QuotaExceeded(_MESSAGE, retry_after=max(self._ttl, 1.0))

    async def allowed(self, tenant_id: str) -> bool:
        async with self._sessions() as s:
            account = await s.get(BillingAccount, tenant_id)
        if account is not None and account.has_payment_method:
            return True
        granted, spent = await granted_and_spent(self._sessions, tenant_id)
        return granted > spent

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop cached answers (after a grant or a payment change)."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)
