"""Limits held exactly by several replicas sharing this machine's Redis (two limiters with
their own connections stand for two control-plane processes)."""

from __future__ import annotations

import asyncio

import pytest

from fleet import FakeClock, RateLimited
from fleet.limits import Layer, Limits
from fleet.limits.counters import UNIT
from tests.limits_support import START, StoreFactory, request

pytestmark = pytest.mark.redis


@pytest.fixture
async def shared(redis_url: str, redis_prefix: str):
    factory = StoreFactory("redis", redis_url, redis_prefix)
    yield factory
    await factory.aclose()


async def test_400_concurrent_requests_against_100_per_minute_admit_exactly_100(
    shared: StoreFactory,
) -> None:
    clock = FakeClock(START + 60)
    layers = {Layer.GLOBAL: Limits(rpm=10_000), Layer.KEY: Limits(rpm=100)}
    replicas = [shared.limiter(layers, clock), shared.limiter(layers, clock)]

    async def one(i: int) -> bool:
        try:
            await replicas[i % 2].acquire(request())
        except RateLimited as exc:
            assert "100 requests per minute on the key layer" in exc.message
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(400)))
    assert sum(results) == 100
    # a refused request took nothing: the global layer counted exactly the 100 admitted
    raw = await shared.raw()
    level, _ = (await raw.get(f"{shared.prefix}:lim:g:rpm")).split(":")
    assert int(level) == 100 * UNIT


async def test_concurrency_8_holds_under_200_concurrent_clients(shared: StoreFactory) -> None:
    clock = FakeClock(START + 60)
    layers = {Layer.TENANT: Limits(concurrency=8)}
    replicas = [shared.limiter(layers, clock), shared.limiter(layers, clock)]
    in_flight = peak = served = 0

    async def client(i: int) -> None:
        nonlocal in_flight, peak, served
        limiter = replicas[i % 2]
        while True:
            try:
                adm = await limiter.acquire(request())
                break
            except RateLimited:
                await asyncio.sleep(0.001)
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            for _ in range(3):  # the request streams for a while
                await asyncio.sleep(0)
        finally:
            in_flight -= 1
            served += 1
            await limiter.release(adm, used_tokens=0)

    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(200))), timeout=60)
    assert served == 200 and peak == 8


async def test_slots_of_a_dead_replica_come_back_after_the_lease(shared: StoreFactory) -> None:
    clock = FakeClock(START + 60)
    layers = {Layer.KEY: Limits(concurrency=8)}
    dead = shared.limiter(layers, clock, lease_seconds=30)
    for _ in range(8):
        await dead.acquire(request())
    await dead.close()  # its process is gone: nothing renews or releases its leases
    alive = shared.limiter(layers, clock, lease_seconds=30)
    with pytest.raises(RateLimited, match="8 concurrent requests"):
        await alive.acquire(request())
    clock.advance(29.9)
    with pytest.raises(RateLimited):
        await alive.acquire(request())
    clock.advance(0.1)
    admissions = [await alive.acquire(request()) for _ in range(8)]
    assert admissions[-1].lease_id


async def test_a_living_replica_keeps_its_leases_by_renewing(shared: StoreFactory) -> None:
    clock = FakeClock(START + 60)
    layers = {Layer.KEY: Limits(concurrency=1)}
    holder = shared.limiter(layers, clock, lease_seconds=30)
    other = shared.limiter(layers, clock, lease_seconds=30)
    adm = await holder.acquire(request())
    for _ in range(10):  # a five-minute stream
        clock.advance(29)
        await holder.renew_leases()
        with pytest.raises(RateLimited):
            await other.acquire(request())
    await holder.release(adm, used_tokens=10)
    await other.acquire(request())
