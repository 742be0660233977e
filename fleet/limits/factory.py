"""Choosing the limiter from settings: Redis (shared by every replica) when ``CIC_REDIS_URL``
is set, in process otherwise (the embedded control plane)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from fleet.clock import Clock
from fleet.limits.counters import CounterStore
from fleet.limits.failover import FailoverCounterStore
from fleet.limits.limiter import LayeredLimiter
from fleet.limits.memory import MemoryCounterStore
from fleet.limits.redis_store import RedisCounterStore
from fleet.limits.resolver import LimitResolver
from fleet.settings import Settings


def build_limiter(
    settings: Settings,
    resolver: LimitResolver,
    *,
    clock: Clock,
    registry: CollectorRegistry | None = None,
) -> LayeredLimiter:
    """``registry`` receives the Redis outage counters (the one ``/metrics`` exposes)."""
    store: CounterStore
    if settings.redis_url:
        store = FailoverCounterStore(
            RedisCounterStore.from_url(
                settings.redis_url,
                prefix=settings.redis_prefix,
                timeout=settings.limits_redis_timeout,
            ),
            mode=settings.limits_on_redis_error,
            replicas=settings.replicas,
            clock=clock,
            registry=registry,
        )
    else:
        store = MemoryCounterStore()
    return LayeredLimiter(
        resolver,
        store,
        clock=clock,
        lease_seconds=settings.limits_lease_seconds,
        registry=registry,
    )
