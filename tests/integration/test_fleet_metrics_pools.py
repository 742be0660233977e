"""Pool targets on /metrics come from the pools table (what the autoscaler or an operator set),
re-read at most every ``pool_refresh_seconds`` however often Prometheus scrapes."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from fleet import FakeClock
from fleet.fleet_metrics import FleetCollector
from fleet.tables import Pool


def target(registry: CollectorRegistry, model: str) -> float | None:
    return registry.get_sample_value("cic_pool_target_replicas", {"model": model})


async def set_replicas(services: Any, model: str, replicas: int) -> None:
    async with services.sessions() as session:
        pool = await session.get(Pool, model)
        if pool is None:
            session.add(Pool(model=model, replicas=replicas))
        else:
            pool.replicas = replicas
        await session.commit()


async def test_pool_targets_follow_the_table_within_the_refresh_period(services: Any) -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    fleet = FleetCollector(
        services.fleet.registry, services.sessions, clock=clock, pool_refresh_seconds=10
    ).register(registry)
    await set_replicas(services, "llama", 3)
    await fleet.refresh()
    assert target(registry, "llama") == 3

    await set_replicas(services, "llama", 5)
    await fleet.refresh()  # scraped again at once: no query, last figure
    assert target(registry, "llama") == 3
    clock.advance(10)
    await fleet.refresh()
    assert target(registry, "llama") == 5
    assert b"cic_pool_target_replicas" in generate_latest(registry)
