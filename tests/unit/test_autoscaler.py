"""Autoscaler: a contract every registered policy obeys, then hysteresis, spot/on-demand
split and placement with a fake clock."""

from __future__ import annotations

import pytest

from fleet.autoscaler import (
    NodeLoad,
    PoolAutoscaler,
    PoolConfig,
    PoolSnapshot,
    ScalingPolicy,
    Zone,
    policy_names,
)
from fleet.clock import FakeClock
from fleet.preemptions import ZoneTrouble

ZONES = (
    Zone("aws-us-east-1", "us-east-1a", spot_price=1.0, on_demand_price=3.0),
    Zone("aws-us-east-1", "us-east-1b", spot_price=1.0, on_demand_price=3.0),
    Zone("gcp-us-central1", "us-central1-a", spot_price=1.1, on_demand_price=3.2),
)


def cfg(**kw: object) -> PoolConfig:
    base: dict[str, object] = {"model": "m", "min_replicas": 0, "max_replicas": 8, "zones": ZONES}
    base.update(kw)
    return PoolConfig(**base)  # type: ignore[arg-type]


def busy(n: int, running: int, *, queued: int = 0, spot: bool = True) -> tuple[NodeLoad, ...]:
    return tuple(
        NodeLoad(
            node_id=f"n{i}",
            region=ZONES[i % 3].region,
            zone=ZONES[i % 3].zone,
            spot=spot,
            running=running,
            queued=queued,
        )
        for i in range(n)
    )


# -- registry ----


def test_exactly_one_default_and_duplicates_refused() -> None:
    assert ScalingPolicy.default_name == "llm-load"
    assert policy_names()[0] == "llm-load"
    with pytest.raises(ValueError):

        class Again(ScalingPolicy, name="llm-load"):
            pass

    with pytest.raises(ValueError):

        class SecondDefault(ScalingPolicy, name="other-default", default=True):
            pass

    ScalingPolicy.registry.pop("other-default", None)
    with pytest.raises(ValueError):
        ScalingPolicy.get("nope")


# -- contract over every policy ----


@pytest.mark.parametrize("name", sorted(ScalingPolicy.registry))
class TestEveryPolicy:
    def test_stays_within_min_and_max(self, name: str) -> None:
        policy = ScalingPolicy.get(name)
        for load in (0, 1, 50, 10_000):
            snap = PoolSnapshot(
                cfg(min_replicas=1, max_replicas=3, policy=name),
                nodes=busy(2, load, queued=load),
                waiting=load,
                request_rate=float(load),
            )
            assert 1 <= policy.desired(snap, 0.0) <= 3

    def test_no_load_allows_zero(self, name: str) -> None:
        policy = ScalingPolicy.get(name)
        assert policy.desired(PoolSnapshot(cfg(policy=name)), 0.0) == 0

    def test_more_load_never_asks_for_fewer_nodes(self, name: str) -> None:
        policy = ScalingPolicy.get(name)
        last = 0
        for load in range(0, 200, 10):
            snap = PoolSnapshot(
                cfg(policy=name), nodes=busy(2, load), waiting=load, request_rate=load / 10
            )
            got = policy.desired(snap, 0.0)
            assert got >= last
            last = got

    def test_same_snapshot_same_answer(self, name: str) -> None:
        snap = PoolSnapshot(cfg(policy=name), nodes=busy(3, 20, queued=5), request_rate=7.0)
        assert len({ScalingPolicy.get(name).desired(snap, t) for t in (0.0, 5.0, 99.0)}) == 1

    def test_autoscaler_decision_is_consistent(self, name: str) -> None:
        scaler = PoolAutoscaler(cfg(policy=name, min_replicas=2, base_on_demand=1))
        d = scaler.decide(PoolSnapshot(scaler.config, nodes=busy(2, 40)), 0.0)
        assert d.spot + d.on_demand == sum(p.count for p in d.placements) >= d.target >= 2
        assert d.count(spot=False) == d.on_demand >= 1


# -- the default policy ----


def test_load_policy_counts_running_and_queued_and_waiters_ask_for_one_node() -> None:
    policy = ScalingPolicy.get()
    snap = PoolSnapshot(cfg(target=16), nodes=busy(2, 16, queued=8), waiting=8)
    assert policy.desired(snap, 0.0) == 3  # 32 running + 16 queued = 48 / 16
    # 500 requests piled up while the pool was empty: one node first, then measure its load.
    assert policy.desired(PoolSnapshot(cfg(target=16), waiting=500), 0.0) == 1


def test_load_policy_adds_a_node_when_ttft_breaks_the_slo() -> None:
    nodes = tuple(
        NodeLoad(node_id=f"n{i}", region="r", running=4, queued=2, ttft_p90_s=5.0) for i in range(2)
    )
    snap = PoolSnapshot(cfg(target=16, ttft_slo_s=2.0), nodes=nodes)
    assert ScalingPolicy.get().desired(snap, 0.0) == 3


def test_nodes_with_a_preemption_notice_do_not_count() -> None:
    nodes = (*busy(1, 10), NodeLoad(node_id="x", region="r", running=10, notice=True))
    assert ScalingPolicy.get().desired(PoolSnapshot(cfg(target=10), nodes=nodes), 0.0) == 1


# -- hysteresis ----


def test_scale_from_zero_is_immediate_then_up_and_down_wait() -> None:
    clock = FakeClock(start=0.0)
    scaler = PoolAutoscaler(cfg(target=10, upscale_delay_s=30, downscale_delay_s=300))
    config = scaler.config
    first = scaler.decide(PoolSnapshot(config, waiting=1), clock.now())
    assert (first.target, first.reason) == (1, "scale from zero")

    load = PoolSnapshot(config, nodes=busy(1, 30))
    assert scaler.decide(load, clock.now()).target == 1
    clock.advance(29)
    assert scaler.decide(load, clock.now()).target == 1
    clock.advance(1)
    assert scaler.decide(load, clock.now()).target == 3

    idle = PoolSnapshot(config, nodes=busy(3, 0))
    assert scaler.decide(idle, clock.now()).target == 3
    clock.advance(150)
    # A blip of load in the window restarts nothing but sets the floor of the downscale.
    assert scaler.decide(PoolSnapshot(config, nodes=busy(3, 5)), clock.now()).target == 3
    clock.advance(150)
    assert scaler.decide(idle, clock.now()).target == 2  # 15 in flight / 10 = 2 at the peak
    clock.advance(10)
    assert scaler.decide(idle, clock.now()).target == 2  # a new window starts
    clock.advance(300)
    assert scaler.decide(idle, clock.now()).target == 0


def test_flapping_load_does_not_flap_the_target() -> None:
    clock = FakeClock(start=0.0)
    scaler = PoolAutoscaler(cfg(target=10, min_replicas=1, upscale_delay_s=30))
    targets = []
    for i in range(20):
        load = 30 if i % 2 else 0
        targets.append(
            scaler.decide(PoolSnapshot(scaler.config, nodes=busy(1, load)), clock.now()).target
        )
        clock.advance(10)
    assert set(targets) == {1}


# -- spot / on-demand ----


def test_base_on_demand_and_spot_first() -> None:
    scaler = PoolAutoscaler(cfg(min_replicas=4, base_on_demand=1))
    d = scaler.decide(PoolSnapshot(scaler.config), 0.0)
    assert (d.spot, d.on_demand) == (3, 1)


def test_on_demand_fills_in_only_while_spot_capacity_is_missing() -> None:
    clock = FakeClock(start=1000.0)
    scaler = PoolAutoscaler(cfg(min_replicas=2, spot_grace_s=120))
    launching = tuple(
        NodeLoad(node_id=f"s{i}", region=z.region, zone=z.zone, ready=False, since=1000.0)
        for i, z in enumerate(ZONES[:2])
    )
    # Spot launches under way, inside the grace period: no on-demand yet.
    assert scaler.decide(PoolSnapshot(scaler.config, nodes=launching), clock.now()).on_demand == 0
    # Every spot zone just failed with a capacity error: on-demand for all missing spot.
    errors = {z.key: clock.now() for z in ZONES}
    d = scaler.decide(PoolSnapshot(scaler.config, capacity_errors=errors), clock.now())
    assert (d.spot, d.on_demand) == (2, 2)
    # Slow spot launches past the grace period count as missing.
    clock.advance(121)
    d = scaler.decide(PoolSnapshot(scaler.config, nodes=launching), clock.now())
    assert d.on_demand == 2
    # Spot ready again: the fallback goes away.
    ready = tuple(
        NodeLoad(node_id=f"s{i}", region="aws-us-east-1", zone=z.zone)
        for i, z in enumerate(ZONES[:2])
    )
    assert scaler.decide(PoolSnapshot(scaler.config, nodes=ready), clock.now()).on_demand == 0


def test_spot_disabled_means_all_on_demand() -> None:
    scaler = PoolAutoscaler(cfg(min_replicas=2, use_spot=False))
    d = scaler.decide(PoolSnapshot(scaler.config), 0.0)
    assert (d.spot, d.on_demand, d.count(spot=False)) == (0, 2, 2)


# -- placement ----


def test_new_nodes_spread_over_zones_and_regions() -> None:
    scaler = PoolAutoscaler(cfg(min_replicas=3))
    d = scaler.decide(PoolSnapshot(scaler.config), 0.0)
    assert sorted((p.zone, p.count) for p in d.placements) == [
        ("us-central1-a", 1),
        ("us-east-1a", 1),
        ("us-east-1b", 1),
    ]


def test_recent_preemptions_steer_away_and_the_memory_fades() -> None:
    clock = FakeClock(start=0.0)
    trouble = ZoneTrouble(half_life=600)
    scaler = PoolAutoscaler(cfg(min_replicas=2), trouble=trouble)
    for _ in range(3):
        trouble.record("aws-us-east-1/us-east-1a", clock.now())
    d = scaler.decide(PoolSnapshot(scaler.config), clock.now())
    assert "us-east-1a" not in {p.zone for p in d.placements}
    clock.advance(6 * 3600)
    d = scaler.decide(PoolSnapshot(scaler.config), clock.now())
    assert "us-east-1a" in {p.zone for p in d.placements}


def test_existing_nodes_stay_put_and_the_worst_zone_shrinks_first() -> None:
    trouble = ZoneTrouble()
    scaler = PoolAutoscaler(cfg(min_replicas=2), trouble=trouble)
    trouble.record("gcp-us-central1/us-central1-a", 0.0)
    nodes = busy(3, 0)  # one node in each zone
    d = scaler.decide(PoolSnapshot(scaler.config, nodes=nodes), 0.0)
    assert sorted(p.zone for p in d.placements) == ["us-east-1a", "us-east-1b"]


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        cfg(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError):
        cfg(target=0)


def test_load_policy_uses_littles_law_when_nodes_measure_service_time() -> None:
    nodes = tuple(NodeLoad(node_id=f"n{i}", region="r", running=3, service_s=1.2) for i in range(2))
    policy = ScalingPolicy.get()
    # 20 requests/s x 1.2 s in service = 24 in flight; 12 per node -> 2 nodes.
    assert policy.desired(PoolSnapshot(cfg(target=12), nodes=nodes, request_rate=20.0), 0) == 2
    # Long generations weigh more at the same request rate.
    slow = tuple(NodeLoad(node_id="s", region="r", running=3, service_s=6.0) for _ in range(1))
    assert policy.desired(PoolSnapshot(cfg(target=12), nodes=slow, request_rate=20.0), 0) == 8
