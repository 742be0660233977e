"""One conformance suite for both counter stores (in-process and this machine's Redis): what a
caller notices — admitted or refused, which error, Retry-After, the x-ratelimit headers."""

from __future__ import annotations

import asyncio

import pytest

from fleet import FakeClock, QuotaExceeded, RateLimited
from fleet.limits import Layer, Limits
from fleet.limits.counters import UNIT
from tests.limits_support import START, StoreFactory, key_info, request, stores

__all__ = ["stores"]


async def test_a_minute_limit_admits_a_burst_then_the_steady_rate(stores: StoreFactory) -> None:
    clock = FakeClock(START)
    lim = stores.limiter({Layer.KEY: Limits(rpm=3)}, clock)
    for _ in range(3):
        await lim.acquire(request())
    with pytest.raises(RateLimited) as exc:
        await lim.acquire(request())
    err = exc.value
    assert type(err) is RateLimited and err.code == "rate_limit_exceeded"
    assert "3 requests per minute on the key layer" in err.message
    assert err.retry_after == pytest.approx(20.0)
    assert err.headers["retry-after"] == "20"
    assert err.headers["x-ratelimit-limit-requests"] == "3"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.advance(19.9)
    with pytest.raises(RateLimited):
        await lim.acquire(request())
    clock.advance(0.1)
    adm = await lim.acquire(request())
    assert adm.headers["x-ratelimit-remaining-requests"] == "0"


async def test_refusal_takes_nothing_from_other_layers(stores: StoreFactory) -> None:
    clock = FakeClock(START)
    layers = {Layer.TENANT: Limits(rpm=10, tpm=1000), Layer.KEY: Limits(rpm=1)}
    lim = stores.limiter(layers, clock)
    await lim.acquire(request(key_info("k1"), tokens=100))
    for _ in range(5):
        with pytest.raises(RateLimited, match="key layer"):
            await lim.acquire(request(key_info("k1"), tokens=100))
    # the tenant layer was charged once: a sibling key still has 9 requests and 900 tokens
    adm = await lim.acquire(request(key_info("k2"), tokens=100))
    assert adm.headers["x-ratelimit-remaining-requests"] == "0"  # k2's own key layer
    assert adm.headers["x-ratelimit-remaining-tokens"] == "800"


async def test_headers_report_the_tightest_layer(stores: StoreFactory) -> None:
    clock = FakeClock(START)
    layers = {
        Layer.GLOBAL: Limits(rpm=1000, tpm=100_000),
        Layer.TENANT: Limits(rpm=50, tpm=5_000),
        Layer.KEY: Limits(rpm=100, tpm=2_000),
    }
    adm = await stores.limiter(layers, clock).acquire(request(tokens=500))
    assert adm.headers == {
        "x-ratelimit-limit-requests": "50",
        "x-ratelimit-remaining-requests": "49",
        "x-ratelimit-reset-requests": "1.2s",
        "x-ratelimit-limit-tokens": "2000",
        "x-ratelimit-remaining-tokens": "1500",
        "x-ratelimit-reset-tokens": "15s",
    }


async def test_daily_quota_is_insufficient_quota_until_midnight(stores: StoreFactory) -> None:
    clock = FakeClock(START)  # 30 s before midnight UTC
    lim = stores.limiter({Layer.TENANT: Limits(rpd=2)}, clock)
    await lim.acquire(request())
    await lim.acquire(request())
    with pytest.raises(QuotaExceeded) as exc:
        await lim.acquire(request())
    assert exc.value.status == 429 and exc.value.code == "insufficient_quota"
    assert exc.value.type == "insufficient_quota"
    assert "2 requests per day on the tenant layer" in exc.value.message
    assert exc.value.headers["retry-after"] == "30"
    clock.advance(30)
    await lim.acquire(request())


async def test_daily_quota_wins_over_a_minute_limit(stores: StoreFactory) -> None:
    clock = FakeClock(START)
    lim = stores.limiter({Layer.KEY: Limits(rpm=1, rpd=1)}, clock)
    await lim.acquire(request())
    with pytest.raises(QuotaExceeded):
        await lim.acquire(request())


async def test_tokens_are_corrected_to_real_usage(stores: StoreFactory) -> None:
    clock = FakeClock(START + 60)
    lim = stores.limiter({Layer.KEY: Limits(tpm=1000, tpd=5000)}, clock)
    adm = await lim.acquire(request(tokens=800))
    assert adm.headers["x-ratelimit-remaining-tokens"] == "200"
    with pytest.raises(RateLimited):
        await lim.acquire(request(tokens=300))
    await lim.release(adm, used_tokens=250)  # refund 550
    adm2 = await lim.acquire(request(tokens=300))
    assert adm2.headers["x-ratelimit-remaining-tokens"] == "450"
    await lim.release(adm2, used_tokens=800)  # extra charge 500: 1050 used, 50 overdrawn
    with pytest.raises(RateLimited) as exc:
        await lim.acquire(request(tokens=1))
    assert exc.value.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.advance(3.0)  # 50 tokens drained (1000 a minute): still full
    with pytest.raises(RateLimited):
        await lim.acquire(request(tokens=1))
    clock.advance(0.06)
    await lim.acquire(request(tokens=1))


async def test_a_request_larger_than_the_limit_is_refused_for_good(stores: StoreFactory) -> None:
    lim = stores.limiter({Layer.KEY: Limits(tpm=1000)}, FakeClock(START))
    with pytest.raises(RateLimited, match="Request too large: it needs 1001 tokens"):
        await lim.acquire(request(tokens=1001))


async def test_concurrency_slots_are_leases(stores: StoreFactory) -> None:
    clock = FakeClock(START)
    lim = stores.limiter({Layer.ENVIRONMENT: Limits(concurrency=2)}, clock, lease_seconds=10)
    a = await lim.acquire(request())
    b = await lim.acquire(request())
    with pytest.raises(RateLimited, match="2 concurrent requests on the environment layer"):
        await lim.acquire(request())
    await lim.release(a, used_tokens=0)
    await lim.release(a, used_tokens=0)  # a second release frees nothing more
    c = await lim.acquire(request())
    with pytest.raises(RateLimited):
        await lim.acquire(request())
    # the holder renews while the requests run ...
    clock.advance(8)
    await lim.renew_leases()
    clock.advance(8)
    with pytest.raises(RateLimited):
        await lim.acquire(request())
    # ... and a holder that died stops renewing: its slots come back after the lease
    clock.advance(10)
    other = stores.limiter({Layer.ENVIRONMENT: Limits(concurrency=2)}, clock)
    await other.acquire(request())
    await other.acquire(request())
    del b, c


async def test_unlimited_callers_skip_the_store(stores: StoreFactory) -> None:
    adm = await stores.limiter({}, FakeClock(START)).acquire(request(tokens=10**9))
    assert adm.headers == {} and adm.checks == ()


@pytest.mark.redis
async def test_token_correction_leaves_the_counter_at_real_usage(
    redis_url: str, redis_prefix: str
) -> None:
    factory = StoreFactory("redis", redis_url, redis_prefix)
    try:
        clock = FakeClock(START + 60)
        lim = factory.limiter({Layer.KEY: Limits(tpm=100_000, tpd=1_000_000)}, clock)
        admissions = [await lim.acquire(request(tokens=4000)) for _ in range(10)]
        used = [17 * i + 3 for i in range(10)]
        await asyncio.gather(
            *(lim.release(a, used_tokens=u) for a, u in zip(admissions, used, strict=True))
        )
        raw = await factory.raw()
        level, _ = (await raw.get(f"{redis_prefix}:lim:k:k1:tpm")).split(":")
        assert int(level) == sum(used) * UNIT
        day = int(clock.now() * 1000) // 86_400_000
        assert int(await raw.get(f"{redis_prefix}:lim:k:k1:tpd:{day}")) == sum(used)
    finally:
        await factory.aclose()
