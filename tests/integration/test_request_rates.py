"""The autoscaler's request rate is the whole cluster's, over the last minute, and leaves out
requests the fleet should not grow for."""

from __future__ import annotations

import pytest

from fleet.clock import FakeClock
from fleet.metrics import GatewayMetrics
from fleet.request_rates import RequestRates


def serve(metrics: GatewayMetrics, model: str, count: int, *, status: int = 200) -> None:
    for _ in range(count):
        metrics.request_done(model=model, endpoint="chat.completions", status=status, latency_s=0.1)


async def test_rate_counts_served_and_failed_requests_not_client_errors() -> None:
    clock = FakeClock(start=1_800_000_000.0)
    metrics = GatewayMetrics()
    rates = RequestRates(metrics, clock)
    serve(metrics, "m", 540)
    serve(metrics, "m", 60, status=503)  # no capacity: demand the fleet failed to serve
    serve(metrics, "m", 900, status=429)  # a rate-limited tenant is not demand
    serve(metrics, "other", 30)
    await rates.publish()
    assert await rates.rate("m") == 0.0  # the bucket is not complete yet
    clock.advance(10)
    assert await rates.rate("m") == pytest.approx(600 / 60)
    assert await rates.rate("other") == pytest.approx(30 / 60)
    await rates.publish()  # nothing new: nothing counted twice
    clock.advance(60)
    assert await rates.rate("m") == 0.0  # out of the window


@pytest.mark.redis
async def test_leader_sees_every_replica_through_redis(redis_url, redis_prefix) -> None:
    from redis.asyncio import Redis

    clock = FakeClock(start=1_800_000_000.0)
    redis = Redis.from_url(redis_url)
    try:
        one, two = GatewayMetrics(), GatewayMetrics()
        replica_one = RequestRates(one, clock, redis=redis, prefix=redis_prefix)
        replica_two = RequestRates(two, clock, redis=redis, prefix=redis_prefix)
        serve(one, "m", 120)
        serve(two, "m", 240)
        await replica_one.publish()
        await replica_two.publish()
        clock.advance(5)
        serve(one, "m", 60)
        await replica_one.publish()
        clock.advance(10)
        assert await replica_two.rate("m") == pytest.approx(420 / 60)
    finally:
        await redis.aclose()


@pytest.mark.redis
async def test_a_failed_report_is_sent_again(redis_url, redis_prefix) -> None:
    """Requests served while Redis was away are reported once it is back, not lost."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    clock = FakeClock(start=1_800_000_000.0)
    metrics = GatewayMetrics()
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    rates = RequestRates(metrics, clock, redis=dead, prefix=redis_prefix)
    serve(metrics, "m", 60)
    with pytest.raises(RedisError):
        await rates.publish()
    await dead.aclose()
    redis = Redis.from_url(redis_url)
    try:
        rates._redis = redis  # Redis is reachable again
        await rates.publish()
        clock.advance(10)
        assert await rates.rate("m") == pytest.approx(1.0)
    finally:
        await redis.aclose()
