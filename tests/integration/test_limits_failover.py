"""Limits while Redis dies and comes back: a Redis server of the test's own (never the shared
one) is stopped and restarted under a running limiter."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from fleet import FakeClock, RateLimited
from fleet.errors import LimitsUnavailable
from fleet.limits import Layer, LayeredLimiter, Limits
from fleet.limits.failover import FailoverCounterStore
from fleet.limits.redis_store import SCRIPT_SHA, RedisCounterStore
from tests.conftest import IN_CI, free_port
from tests.limits_support import START, StaticLayers, request

pytestmark = pytest.mark.redis


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            )
            if done.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def outages(store: FailoverCounterStore) -> float:
    return store.registry.get_sample_value("cic_limits_store_outages_total") or 0.0


def limiter_on(server: RedisServer, clock: FakeClock, mode: str, replicas: int = 2):
    store = FailoverCounterStore(
        RedisCounterStore.from_url(server.url, prefix="cictest"),
        mode=mode,  # type: ignore[arg-type]
        replicas=replicas,
        clock=clock,
    )
    layers = StaticLayers({Layer.KEY: Limits(rpm=10)})
    return LayeredLimiter(layers, store, clock=clock), store


async def admitted(limiter: LayeredLimiter, n: int) -> int:
    count = 0
    for _ in range(n):
        try:
            await limiter.acquire(request())
            count += 1
        except RateLimited:
            pass
    return count


async def test_fail_open_limits_per_replica_then_recovers(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cicfleet.limits")
    clock = FakeClock(START + 60)
    limiter, store = limiter_on(own_redis, clock, "open")
    try:
        held = await limiter.acquire(request())  # reserved in Redis
        own_redis.stop()
        # this replica's share of the key's 10 rpm with 2 replicas
        assert await admitted(limiter, 8) == 5
        assert store.is_down and outages(store) == 1
        down_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down_logs) == 1
        await limiter.release(held, used_tokens=0)  # Redis gone: dropped, never raised

        own_redis.start()
        assert await admitted(limiter, 1) == 0  # not retried within the second
        clock.advance(1.0)
        assert await admitted(limiter, 12) == 10  # Redis again (restarted empty): the full 10
        assert not store.is_down and outages(store) == 1
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await limiter.close()


async def test_fail_closed_answers_503_until_redis_returns(own_redis: RedisServer) -> None:
    clock = FakeClock(START + 60)
    limiter, _ = limiter_on(own_redis, clock, "closed")
    try:
        await limiter.acquire(request())
        own_redis.stop()
        with pytest.raises(LimitsUnavailable) as exc:
            await limiter.acquire(request())
        assert exc.value.status == 503 and exc.value.headers["retry-after"] == "1"
        own_redis.start()
        clock.advance(1.0)
        await limiter.acquire(request())
    finally:
        await limiter.close()


async def test_script_is_loaded_again_after_a_flush(own_redis: RedisServer) -> None:
    clock = FakeClock(START + 60)
    limiter, _ = limiter_on(own_redis, clock, "closed")
    admin = Redis.from_url(own_redis.url)
    try:
        await limiter.acquire(request())
        await admin.script_flush()
        await limiter.acquire(request())
        assert await admin.script_exists(SCRIPT_SHA) == [True]
    finally:
        await admin.aclose()
        await limiter.close()
