"""What the limits tests share: a limiter over either store with layers given in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from redis.asyncio import Redis

from fleet import FakeClock, KeyInfo
from fleet.limits import Layer, LayeredLimiter, LimitRequest, Limits
from fleet.limits.counters import CounterStore
from fleet.limits.memory import MemoryCounterStore
from fleet.limits.model import LayerLimits
from fleet.limits.redis_store import RedisCounterStore

# 30 s before a UTC midnight, so sequences cross into a new day
START = (1_800_000_000 // 86_400 + 1) * 86_400 - 30.0


def key_info(key: str = "k1", env: str = "e1", tenant: str = "t1", plan: str = "free") -> KeyInfo:
    return KeyInfo(
        key_id=key, tenant_id=tenant, environment_id=env, tenant_status="active", plan=plan
    )


def request(key: KeyInfo | None = None, tokens: int = 0) -> LimitRequest:
    return LimitRequest(key=key or key_info(), model="m", estimated_tokens=tokens)


class StaticLayers:
    """Layers fixed by the test: ``{Layer: Limits}`` applied to every key."""

    def __init__(self, layers: Mapping[Layer, Limits]) -> None:
        self.layers_by = dict(layers)

    async def layers(self, key: KeyInfo) -> tuple[LayerLimits, ...]:
        ident = {
            Layer.GLOBAL: "g",
            Layer.TENANT: f"t:{key.tenant_id}",
            Layer.ENVIRONMENT: f"e:{key.environment_id}",
            Layer.KEY: f"k:{key.key_id}",
        }
        return tuple(
            LayerLimits(layer, ident[layer], self.layers_by[layer])
            for layer in Layer
            if layer in self.layers_by and not self.layers_by[layer].is_unlimited
        )

    async def close(self) -> None:
        return None


class StoreFactory:
    """Makes stores of one kind; every Redis store of one test shares one prefix (so two
    stores are two replicas sharing Redis), in-process stores share one instance."""

    def __init__(self, kind: str, redis_url: str | None, prefix: str) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.prefix = prefix
        self._memory = MemoryCounterStore()
        self.clients: list[Redis] = []

    def store(self, prefix: str | None = None) -> CounterStore:
        if self.kind == "memory":
            return self._memory if prefix is None else MemoryCounterStore()
        client = Redis.from_url(self.redis_url, max_connections=512)
        self.clients.append(client)
        return RedisCounterStore(client, prefix=prefix or self.prefix)

    def limiter(
        self,
        layers: Mapping[Layer, Limits],
        clock: FakeClock,
        *,
        lease_seconds: float = 30.0,
        prefix: str | None = None,
    ) -> LayeredLimiter:
        return LayeredLimiter(
            StaticLayers(layers), self.store(prefix), clock=clock, lease_seconds=lease_seconds
        )

    async def raw(self) -> Redis:
        assert self.redis_url is not None
        client = Redis.from_url(self.redis_url, decode_responses=True)
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        if self.redis_url is not None:
            raw = Redis.from_url(self.redis_url)
            keys = [k async for k in raw.scan_iter(match=f"{self.prefix}*", count=1000)]
            if keys:
                await raw.delete(*keys)
            await raw.aclose()
        for c in self.clients:
            await c.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Each test using this runs on the in-process store and on this machine's Redis."""
    if request.param == "memory":
        factory = StoreFactory("memory", None, "")
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        factory = StoreFactory("redis", url, prefix)
    yield factory
    await factory.aclose()
