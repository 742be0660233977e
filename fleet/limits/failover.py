"""What the limits do while Redis is down.

``open`` (the default): each replica counts in process, every figure divided by
``CIC_REPLICAS`` so the replicas together stay near the configured limits while a load
balancer spreads the traffic. ``closed``: requests are refused with 503 until Redis answers.

An outage is logged once when it starts and once when it ends, and counted in
``cic_limits_store_outages_total``. While down, Redis is tried again at most once per
``retry_seconds`` (by the next request), so recovery needs nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from fleet.clock import Clock
from fleet.errors import LimitsUnavailable
from fleet.limits.counters import Check, Verdict
from fleet.limits.memory import MemoryCounterStore
from fleet.limits.redis_store import RedisCounterStore
from fleet.logs import get_logger

log = get_logger("cicfleet.limits")


class FailoverMetrics:
    """The failover's counters, in the registry ``/metrics`` exposes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outages = Counter(
            "cic_limits_store_outages",
            "Times the Redis limits store became unreachable",
            registry=registry,
        )
        self.fallback_decisions = Counter(
            "cic_limits_fallback_decisions",
            "Requests admitted or refused by in-process limits while Redis was unreachable",
            registry=registry,
        )


_STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class FailoverCounterStore:
    def __init__(
        self,
        primary: RedisCounterStore,
        *,
        mode: Literal["open", "closed"],
        replicas: int,
        clock: Clock,
        retry_seconds: float = 1.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._metrics = FailoverMetrics(self.registry)
        self._primary = primary
        self._fallback = MemoryCounterStore()
        self._mode = mode
        self._replicas = max(1, replicas)
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._down = False
        self._next_try = 0.0
        self._local_leases: set[str] = set()

    @property
    def is_down(self) -> bool:
        return self._down

    def _share(self, checks: Sequence[Check]) -> list[Check]:
        """This replica's part of every figure (at least 1, so a caller is never locked out)."""
        return [replace(c, limit=max(1, c.limit // self._replicas)) for c in checks]

    def _try_primary(self) -> bool:
        return not self._down or self._clock.monotonic() >= self._next_try

    def _failed(self, exc: BaseException) -> None:
        self._next_try = self._clock.monotonic() + self._retry_seconds
        if not self._down:
            self._down = True
            self._metrics.outages.inc()
            log.warning(
                "limits store unreachable; limits now fail %s",
                self._mode,
                extra={"error": type(exc).__name__},
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.warning("limits store reachable again; limits are shared across replicas")

    async def reserve(
        self,
        checks: Sequence[Check],
        *,
        tokens: int,
        lease: str,
        now_ms: int,
        lease_until_ms: int,
    ) -> Verdict:
        if self._try_primary():
            try:
                verdict = await self._primary.reserve(
                    checks, tokens=tokens, lease=lease, now_ms=now_ms, lease_until_ms=lease_until_ms
                )
            except _STORE_ERRORS as exc:
                self._failed(exc)
            else:
                self._recovered()
                return verdict
        if self._mode == "closed":
            raise LimitsUnavailable(
                "Rate limits cannot be checked right now; please retry shortly.",
                retry_after=self._retry_seconds,
            )
        self._metrics.fallback_decisions.inc()
        verdict = await self._fallback.reserve(
            self._share(checks),
            tokens=tokens,
            lease=lease,
            now_ms=now_ms,
            lease_until_ms=lease_until_ms,
        )
        if verdict.rejected is None:
            self._local_leases.add(lease)
        return verdict

    async def settle(
        self, checks: Sequence[Check], *, delta_tokens: int, lease: str, now_ms: int
    ) -> None:
        """Correct where the request was reserved. A correction Redis cannot take is dropped:
        the lease expires by itself and a token reservation drains within a minute."""
        if lease in self._local_leases:
            self._local_leases.discard(lease)
            await self._fallback.settle(
                self._share(checks), delta_tokens=delta_tokens, lease=lease, now_ms=now_ms
            )
            return
        try:
            await self._primary.settle(
                checks, delta_tokens=delta_tokens, lease=lease, now_ms=now_ms
            )
        except _STORE_ERRORS as exc:
            self._failed(exc)

    async def renew(
        self, leases: Sequence[tuple[str, Sequence[Check]]], *, now_ms: int, until_ms: int
    ) -> None:
        local = [(lid, self._share(cs)) for lid, cs in leases if lid in self._local_leases]
        shared = [(lid, cs) for lid, cs in leases if lid not in self._local_leases]
        await self._fallback.renew(local, now_ms=now_ms, until_ms=until_ms)
        if shared and not self._down:
            try:
                await self._primary.renew(shared, now_ms=now_ms, until_ms=until_ms)
            except _STORE_ERRORS as exc:
                self._failed(exc)

    async def close(self) -> None:
        await self._primary.close()
