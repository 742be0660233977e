"""Requests per second per model across every replica, for the autoscaler's request-rate policy.

Each replica already counts served requests in its Prometheus counter (``cic_requests``); the
request path pays nothing more. Every few seconds a replica adds what it served since its last
report into a 10-second bucket per model: a Redis hash per bucket (expiring after the window)
when Redis is configured, so the leader sees the whole cluster, or an in-process table in the
embedded single-replica mode. The leader's rate is the sum of the last six complete buckets
over 60 s.

Client errors (4xx: bad requests, rate-limited callers, no quota) are not demand the fleet
should grow for; 5xx (no capacity, node failures) are.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fleet.clock import Clock
from fleet.metrics import GatewayMetrics

BUCKET_SECONDS = 10
WINDOW_BUCKETS = 6  # the rate is over the last 60 s


class RequestRates:
    """Publishes this replica's served requests and sums everybody's (see the module doc)."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        clock: Clock,
        *,
        redis: Any | None = None,
        prefix: str = "cic",
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._redis = redis
        self._prefix = prefix
        self._reported: dict[str, float] = {}
        self._local: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def _key(self, bucket: int) -> str:
        return f"{self._prefix}:rates:{bucket}"

    async def publish(self) -> None:
        """Add the requests served since the last call to the current bucket; on a failure
        the same requests are offered again next time."""
        served = self._metrics.served_by_model()
        delta = {m: n - self._reported.get(m, 0.0) for m, n in served.items()}
        delta = {m: n for m, n in delta.items() if n > 0}
        if not delta:
            return
        bucket = int(self._clock.now() // BUCKET_SECONDS)
        if self._redis is None:
            for model, n in delta.items():
                self._local[bucket][model] += n
            for old in [b for b in self._local if b <= bucket - WINDOW_BUCKETS - 1]:
                del self._local[old]
        else:
            key = self._key(bucket)
            async with self._redis.pipeline(transaction=False) as pipe:
                for model, n in delta.items():
                    pipe.hincrbyfloat(key, model, n)
                pipe.expire(key, BUCKET_SECONDS * (WINDOW_BUCKETS + 2))
                await pipe.execute()
        self._reported = served

    async def rate(self, model: str) -> float:
        """Requests/s for ``model`` over the last complete minute, cluster-wide; raises when
        the shared store is unreachable (the caller then skips this tick, never scales on a
        rate it could not read)."""
        current = int(self._clock.now() // BUCKET_SECONDS)
        buckets = range(current - WINDOW_BUCKETS, current)
        if self._redis is None:
            total = sum(self._local.get(b, {}).get(model, 0.0) for b in buckets)
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for b in buckets:
                    pipe.hget(self._key(b), model)
                values = await pipe.execute()
            total = sum(float(v) for v in values if v is not None)
        return total / (BUCKET_SECONDS * WINDOW_BUCKETS)
