"""What /metrics tells an operator about the fleet: nodes by state, region and spot, what the
rented nodes cost per hour, how stale the ready nodes' heartbeats are, whether this replica
leads; and which limit layer refuses requests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fleet import FakeClock
from fleet.errors import RateLimited
from fleet.fleet_metrics import FleetCollector
from fleet.limits import Layer, LayeredLimiter, Limits
from fleet.limits.memory import MemoryCounterStore
from fleet.registry import NodeView, Registry
from fleet.tables import NodeState
from tests.limits_support import StaticLayers, request


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def node(i: int, state: NodeState, **kw: Any) -> NodeView:
    return NodeView(id=f"node_{i}", model=kw.pop("model", "llama"), state=state, **kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def collector(nodes: list[NodeView], clock: FakeClock, leader: bool = False) -> CollectorRegistry:
    registry = Registry(sessions=None, clock=clock)  # type: ignore[arg-type]
    registry.nodes = {n.id: n for n in nodes}
    out = CollectorRegistry()
    FleetCollector(registry, None, is_leader=lambda: leader, clock=clock).register(out)  # type: ignore[arg-type]
    return out


def test_nodes_are_counted_by_state_region_and_spot(clock: FakeClock) -> None:
    nodes = [
        node(1, NodeState.READY, region="us-east-1", spot=True),
        node(2, NodeState.READY, region="us-east-1", spot=True),
        node(3, NodeState.READY, region="eu-west-1", spot=False),
        node(4, NodeState.LAUNCHING, region="us-east-1", spot=True),
        node(5, NodeState.READY, region="us-east-1", spot=True, model="mistral"),
    ]
    got = samples(collector(nodes, clock))
    ready_spot = frozenset(
        {("model", "llama"), ("state", "ready"), ("region", "us-east-1"), ("spot", "true")}
    )
    assert got[("cic_nodes", ready_spot)] == 2
    launching = ready_spot - {("state", "ready")} | {("state", "launching")}
    assert got[("cic_nodes", launching)] == 1
    eu = frozenset(
        {("model", "llama"), ("state", "ready"), ("region", "eu-west-1"), ("spot", "false")}
    )
    assert got[("cic_nodes", eu)] == 1
    assert sum(v for (name, _), v in got.items() if name == "cic_nodes") == 5


def test_cost_per_hour_counts_rented_nodes_only(clock: FakeClock) -> None:
    nodes = [
        node(1, NodeState.READY, region="r", spot=True, price_per_hour=Decimal("1.25")),
        node(2, NodeState.LAUNCHING, region="r", spot=True, price_per_hour=Decimal("1.25")),
        node(3, NodeState.DRAINING, region="r", spot=True, price_per_hour=Decimal("1.25")),
        node(4, NodeState.TERMINATED, region="r", spot=True, price_per_hour=Decimal("9")),
        node(5, NodeState.READY, region="r", spot=False, price_per_hour=Decimal("3.50")),
    ]
    got = samples(collector(nodes, clock))
    spot = frozenset({("model", "llama"), ("region", "r"), ("spot", "true")})
    on_demand = frozenset({("model", "llama"), ("region", "r"), ("spot", "false")})
    assert got[("cic_fleet_cost_per_hour", spot)] == 3.75
    assert got[("cic_fleet_cost_per_hour", on_demand)] == 3.5


def test_heartbeat_age_is_the_stalest_ready_node(clock: FakeClock) -> None:
    now = clock.now()
    nodes = [
        node(1, NodeState.READY, last_heartbeat=now - 2),
        node(2, NodeState.READY, last_heartbeat=now - 40),
        node(3, NodeState.UNHEALTHY, last_heartbeat=now - 500),  # already out of routing
    ]
    got = samples(collector(nodes, clock))
    assert got[("cic_node_heartbeat_age_seconds", frozenset({("model", "llama")}))] == 40


def test_leader_gauge_follows_the_election(clock: FakeClock) -> None:
    assert samples(collector([], clock, leader=True))[("cic_leader", frozenset())] == 1
    assert samples(collector([], clock, leader=False))[("cic_leader", frozenset())] == 0


async def test_refusals_are_counted_by_layer_and_kind(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    limiter = LayeredLimiter(
        StaticLayers({Layer.TENANT: Limits(rpm=1), Layer.KEY: Limits(rpm=10)}),
        MemoryCounterStore(),
        clock=clock,
        registry=registry,
    )
    await limiter.acquire(request())
    for _ in range(3):
        with pytest.raises(RateLimited):
            await limiter.acquire(request())
    got = samples(registry)
    assert (
        got[("cic_limit_rejections_total", frozenset({("layer", "tenant"), ("kind", "rpm")}))] == 3
    )
    assert ("cic_limit_rejections_total", frozenset({("layer", "key"), ("kind", "rpm")})) not in got
