"""The limiter the gateway calls: resolve the caller's layers, reserve every limited figure in
one call to a counter store, turn the answer into OpenAI's headers or a 429.

Leases: a concurrency slot is a lease with a deadline ``CIC_LIMITS_LEASE_SECONDS`` ahead. While
a request runs, this replica moves the deadline forward every third of that period, so a
request may run for as long as it needs; when the replica dies (even SIGKILL), renewals stop and
its slots come back by themselves within one lease period.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from fleet.clock import Clock
from fleet.errors import QuotaExceeded, RateLimited
from fleet.keys import KeyInfo
from fleet.limits.base import Admission, LimitRequest
from fleet.limits.counters import DAY_MS, NEVER, Check, CounterStore, Verdict, daily_counter
from fleet.limits.model import Kind, LayerLimits
from fleet.logs import get_logger

log = get_logger("cicfleet.limits")

_UNITS = {
    Kind.RPM: "requests per minute",
    Kind.TPM: "tokens per minute",
    Kind.RPD: "requests per day",
    Kind.TPD: "tokens per day",
    Kind.CONCURRENCY: "concurrent requests",
}


def build_checks(layers: Sequence[LayerLimits], now_ms: int) -> tuple[Check, ...]:
    """One check per limited figure, outermost layer first."""
    checks = []
    for ll in layers:
        for kind in Kind:
            limit = ll.limits.get(kind)
            if limit is None:
                continue
            counter = f"{ll.ident}:{kind.value}"
            if kind.is_daily:
                counter = daily_counter(counter, now_ms)
            checks.append(Check(ll.layer, kind, limit, counter))
    return tuple(checks)


def format_reset(ms: int) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``6m0s``, ``1h2m3s``."""
    if ms < 1000:
        return f"{max(0, ms)}ms"
    seconds = ms / 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def rate_headers(checks: Sequence[Check], verdict: Verdict) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers of the tightest request and token figures."""
    headers: dict[str, str] = {}
    for suffix, fig in (("requests", verdict.requests), ("tokens", verdict.tokens)):
        if fig is not None:
            headers[f"x-ratelimit-limit-{suffix}"] = str(checks[fig.index].limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(fig.remaining)
            headers[f"x-ratelimit-reset-{suffix}"] = format_reset(fig.reset_ms)
    return headers


def refusal(check: Check, verdict: Verdict, tokens: int) -> RateLimited:
    """The 429 for the check that refused, naming its layer and limit."""
    what = f"{check.limit} {_UNITS[check.kind]} on the {check.layer.value} layer"
    if verdict.retry_ms == NEVER:
        return RateLimited(
            f"Request too large: it needs {tokens} tokens, the limit is {what}. "
            "Lower max_tokens or shorten the prompt.",
            retry_after=60.0,
        )
    retry_after = verdict.retry_ms / 1000
    if check.kind.is_daily:
        return QuotaExceeded(
            f"Daily quota exceeded: limit {what}. It resets at midnight UTC.",
            retry_after=retry_after,
        )
    return RateLimited(
        f"Rate limit reached: limit {what}. Please retry after {format_reset(verdict.retry_ms)}.",
        retry_after=retry_after,
    )


class LayerSource(Protocol):
    """Where the limiter learns a caller's layers (:class:`~fleet.limits.LimitResolver`)."""

    async def layers(self, key: KeyInfo) -> tuple[LayerLimits, ...]: ...

    async def close(self) -> None: ...


class LayeredLimiter:
    """Four layers of limits over one counter store (Redis, in-process, or the failover)."""

    def __init__(
        self,
        resolver: LayerSource,
        store: CounterStore,
        *,
        clock: Clock,
        lease_seconds: float = 30.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        # Refusals by layer and kind: which limit operators should look at when 429s rise.
        self._refused = Counter(
            "cic_limit_rejections",
            "Requests refused by a rate limit or quota",
            ["layer", "kind"],
            registry=registry,
        )
        self._resolver = resolver
        self._store = store
        self._clock = clock
        self._lease_ms = int(lease_seconds * 1000)
        self._held: dict[str, tuple[Check, ...]] = {}
        self._checks: dict[int, tuple[tuple[LayerLimits, ...], int, tuple[Check, ...]]] = {}
        self._renewer: asyncio.Task[None] | None = None

    @property
    def store(self) -> CounterStore:
        """Where the counters live (Redis with its failover, or this process)."""
        return self._store

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    async def acquire(self, request: LimitRequest) -> Admission:
        layers = await self._resolver.layers(request.key)
        now_ms = self._now_ms()
        checks = self._checks_for(layers, now_ms)
        if not checks:
            return Admission(request=request)
        tokens = max(0, request.estimated_tokens)
        lease = secrets.token_hex(8)
        verdict = await self._store.reserve(
            checks,
            tokens=tokens,
            lease=lease,
            now_ms=now_ms,
            lease_until_ms=now_ms + self._lease_ms,
        )
        headers = rate_headers(checks, verdict)
        if verdict.rejected is not None:
            refused = checks[verdict.rejected]
            self._refused.labels(refused.layer.value, refused.kind.value).inc()
            err = refusal(refused, verdict, tokens)
            err.headers.update(headers)
            raise err
        leased = tuple(c for c in checks if c.leased)
        if leased:
            self._held[lease] = leased
            self._ensure_renewer()
        return Admission(request=request, lease_id=lease, headers=headers, checks=checks)

    def _checks_for(self, layers: tuple[LayerLimits, ...], now_ms: int) -> tuple[Check, ...]:
        """The checks of ``layers`` today, built once per caller and day (the resolver hands
        out one tuple per caller until limits change)."""
        day = now_ms // DAY_MS
        found = self._checks.get(id(layers))
        if found is not None and found[0] is layers and found[1] == day:
            return found[2]
        checks = build_checks(layers, now_ms)
        if len(self._checks) > 10_000:
            self._checks.clear()
        self._checks[id(layers)] = (layers, day, checks)
        return checks

    async def release(self, admission: Admission, *, used_tokens: int) -> None:
        """Correct the tokens and free the slot; a second call for one admission is a no-op."""
        if admission.released or not admission.checks:
            return
        admission.released = True
        self._held.pop(admission.lease_id, None)
        delta = max(0, used_tokens) - max(0, admission.request.estimated_tokens)
        await self._store.settle(
            admission.checks, delta_tokens=delta, lease=admission.lease_id, now_ms=self._now_ms()
        )

    async def renew_leases(self) -> None:
        """Push the deadline of every lease this replica holds one period ahead."""
        if not self._held:
            return
        now_ms = self._now_ms()
        await self._store.renew(
            list(self._held.items()), now_ms=now_ms, until_ms=now_ms + self._lease_ms
        )

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        # Real seconds, not the injected clock: this is a heartbeat cadence, and a FakeClock's
        # instant sleep would spin. The deadlines themselves come from the injected clock.
        period = self._lease_ms / 3000
        while self._held:
            await asyncio.sleep(period)
            try:
                await self.renew_leases()
            except Exception as exc:
                log.debug("lease renewal failed", extra={"error": repr(exc)})

    async def close(self) -> None:
        """Stop renewing (leases still held expire by themselves) and close the store."""
        if self._renewer is not None:
            self._renewer.cancel()
        await self._resolver.close()
        await self._store.close()
