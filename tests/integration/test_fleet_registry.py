"""Registry and reconciler over a real database (SQLite and PostgreSQL), with a provider
double and a fake clock: heartbeat deadlines, drains, notices, restarts, orphans."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from sqlalchemy import select

from fleet import AuthenticationFailed, FakeClock, NodeState
from fleet.db import create_engine, session_factory, upgrade
from fleet.errors import IllegalTransition
from fleet.pools import PoolService
from fleet.providers.base import CapacityUnavailable, ClusterState, ClusterStatus, LaunchSpec
from fleet.reconciler import MAX_ATTEMPTS, Reconciler
from fleet.registry import TRANSITIONS, Heartbeat, Registration, Registry, check_transition
from fleet.routing import Router
from fleet.tables import Node

BEAT = 5.0


@dataclass
class FakeProvider:
    """Clusters in a dict; ``fail_with`` makes the next launches raise."""

    name: str = "local"
    clusters: dict[str, ClusterStatus] = field(default_factory=dict)
    launches: list[LaunchSpec] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    fail_with: Exception | None = None

    async def launch(self, spec: LaunchSpec) -> ClusterStatus:
        self.launches.append(spec)
        if self.fail_with is not None:
            raise self.fail_with
        status = self.clusters.setdefault(
            spec.cluster,
            ClusterStatus(
                spec.cluster,
                ClusterState.UP,
                region=spec.region,
                zone=spec.zone or f"{spec.region}-a",
                price_per_hour=Decimal("1.25"),
            ),
        )
        return status

    async def terminate(self, cluster: str) -> None:
        self.terminated.append(cluster)
        self.clusters.pop(cluster, None)

    async def status(self) -> list[ClusterStatus]:
        return list(self.clusters.values())


class Fleet:
    def __init__(self, sessions, provider: FakeProvider, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.registry = Registry(sessions, clock=clock, heartbeat_interval=BEAT, drain_timeout=60)
        self.router = Router(self.registry, clock=clock)
        self.reconciler = Reconciler(
            sessions, self.registry, {"local": provider}, clock=clock, router=self.router
        )
        self.pools = PoolService(sessions, self.registry, self.router, providers={"local"})
        self.provider = provider

    async def register_all(self) -> dict[str, str]:
        """Play the agents: register every launched cluster with its bootstrap token."""
        tokens = {}
        for spec in self.provider.launches:
            if spec.cluster not in self.provider.clusters:
                continue
            node = next(
                (n for n in self.registry.nodes.values() if n.cluster == spec.cluster), None
            )
            if node is None or node.state not in (NodeState.LAUNCHING, NodeState.REGISTERING):
                continue
            info = Registration(url=f"http://127.0.0.1/{spec.cluster}")
            got, token = await self.registry.register(
                spec.cluster, spec.secrets["bootstrap_token"], info
            )
            tokens[got.id] = token
        return tokens


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    await upgrade(database_url)
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fleet(sessions, clock) -> Fleet:  # type: ignore[no-untyped-def]
    return Fleet(sessions, FakeProvider(), clock)


def test_transition_table_is_the_one_gate() -> None:
    check_transition(NodeState.READY, NodeState.DRAINING)
    with pytest.raises(IllegalTransition):
        check_transition(NodeState.DRAINING, NodeState.READY)
    assert TRANSITIONS[NodeState.TERMINATED] == frozenset()


async def test_launch_registers_and_serves(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=2, actor="t")
    await fleet.reconciler.tick()
    assert len(fleet.provider.launches) == 2
    assert {n.state for n in fleet.registry.nodes.values()} == {NodeState.REGISTERING}
    await fleet.register_all()
    assert {n.state for n in fleet.registry.nodes.values()} == {NodeState.READY}
    assert fleet.router.pick("m").state is NodeState.READY
    status = await fleet.pools.status("m")
    assert status["pools"][0]["ready"] == 2


async def test_bootstrap_token_is_scoped_to_its_cluster(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=2, actor="t")
    await fleet.reconciler.tick()
    a, b = fleet.provider.launches
    with pytest.raises(AuthenticationFailed):
        await fleet.registry.register(a.cluster, "guess", Registration(url="http://evil"))
    with pytest.raises(AuthenticationFailed):  # b's token does not open a's cluster
        await fleet.registry.register(
            a.cluster, b.secrets["bootstrap_token"], Registration(url="http://evil")
        )
    node, token = await fleet.registry.register(
        a.cluster, a.secrets["bootstrap_token"], Registration(url="http://ok")
    )
    with pytest.raises(AuthenticationFailed):
        await fleet.registry.heartbeat(node.id, "wrong", Heartbeat())
    _, token2 = await fleet.registry.register(
        a.cluster, a.secrets["bootstrap_token"], Registration(url="http://ok")
    )
    with pytest.raises(AuthenticationFailed):  # re-registering retires the old node token
        await fleet.registry.heartbeat(node.id, token, Heartbeat())
    await fleet.registry.heartbeat(node.id, token2, Heartbeat())


async def test_silent_node_unhealthy_after_3_beats_then_terminated_and_replaced(
    fleet: Fleet, clock: FakeClock
) -> None:
    await fleet.pools.launch("m", replicas=1, actor="t")
    await fleet.reconciler.tick()
    tokens = await fleet.register_all()
    (node_id,) = tokens
    clock.advance(2.9 * BEAT)
    await fleet.registry.sweep()
    assert fleet.registry.get(node_id).state is NodeState.READY
    clock.advance(0.2 * BEAT)
    await fleet.registry.sweep()
    assert fleet.registry.get(node_id).state is NodeState.UNHEALTHY
    with pytest.raises(Exception, match="no ready node"):
        fleet.router.pick("m")
    await fleet.registry.heartbeat(node_id, tokens[node_id], Heartbeat())  # it comes back
    assert fleet.registry.get(node_id).state is NodeState.READY
    clock.advance(10 * BEAT)
    await fleet.reconciler.tick()
    assert node_id not in fleet.registry.nodes
    live = [n for n in fleet.registry.nodes.values() if n.state is not NodeState.TERMINATED]
    assert len(live) == 1 and live[0].id != node_id  # replaced
    assert fleet.provider.launches[0].cluster in fleet.provider.terminated


async def test_engine_reported_unhealthy_leaves_routing_at_once(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=1, actor="t")
    await fleet.reconciler.tick()
    ((node_id, token),) = (await fleet.register_all()).items()
    await fleet.registry.heartbeat(node_id, token, Heartbeat(healthy=False))
    assert fleet.registry.get(node_id).state is NodeState.UNHEALTHY


async def test_drain_ends_when_idle_or_at_deadline(fleet: Fleet, clock: FakeClock) -> None:
    await fleet.pools.launch("m", replicas=2, actor="t")
    await fleet.reconciler.tick()
    tokens = await fleet.register_all()
    busy, idle = list(tokens)
    for node_id in tokens:
        await fleet.registry.heartbeat(node_id, tokens[node_id], Heartbeat(running=3))
    await fleet.pools.drain(busy, actor="t")
    await fleet.pools.drain(idle, actor="t")
    clock.advance(1)
    await fleet.registry.heartbeat(idle, tokens[idle], Heartbeat(running=0))
    await fleet.registry.heartbeat(busy, tokens[busy], Heartbeat(running=2))
    await fleet.registry.sweep()
    assert idle not in fleet.registry.nodes
    assert fleet.registry.get(busy).state is NodeState.DRAINING
    for _ in range(12):  # keeps beating while busy, until the 60 s deadline
        clock.advance(BEAT)
        await fleet.registry.heartbeat(busy, tokens[busy], Heartbeat(running=2))
        await fleet.registry.sweep()
    assert busy not in fleet.registry.nodes


async def test_spot_notice_drains_and_launches_a_replacement_at_once(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=1, actor="t")
    await fleet.reconciler.tick()
    ((node_id, token),) = (await fleet.register_all()).items()
    woken: list[bool] = []
    fleet.reconciler.on_wake = lambda: woken.append(True)  # the leader's scheduler hook
    await fleet.registry.notice(node_id, token, kind="aws-spot", deadline=None)
    assert fleet.registry.get(node_id).state is NodeState.DRAINING
    assert woken  # the leader runs a tick right away
    await fleet.reconciler.tick()
    fresh = [n for n in fleet.registry.nodes.values() if n.id != node_id]
    assert len(fresh) == 1 and fresh[0].replaces == node_id
    assert fleet.registry.get(node_id).state is NodeState.DRAINING  # old one still finishing


async def test_restart_never_launches_twice(sessions, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    provider = FakeProvider()
    first = Fleet(sessions, provider, clock)
    await first.pools.launch("m", replicas=2, actor="t")
    await first.reconciler.tick()
    second = Fleet(sessions, provider, clock)  # a restarted control plane, same cloud
    await second.reconciler.tick()
    await second.reconciler.tick()
    assert len(provider.launches) == 2
    assert len(provider.launches) == 2


async def test_crash_between_intent_and_launch_reuses_the_cluster_name(
    sessions,
    clock: FakeClock,  # type: ignore[no-untyped-def]
) -> None:
    provider = FakeProvider(fail_with=RuntimeError("control plane dies mid-launch"))
    first = Fleet(sessions, provider, clock)
    await first.pools.launch("m", replicas=1, actor="t")
    with pytest.raises(RuntimeError):
        await first.reconciler.tick()
    provider.fail_with = None
    second = Fleet(sessions, provider, clock)
    await second.reconciler.tick()
    await second.reconciler.tick()
    assert [s.cluster for s in provider.launches] == [provider.launches[0].cluster] * 2
    assert list(provider.clusters) == [provider.launches[0].cluster]


async def test_capacity_errors_are_recorded_then_given_up(fleet: Fleet) -> None:
    fleet.provider.fail_with = CapacityUnavailable("no L4 in us-east-1a", tried=["aws/us-east-1a"])
    await fleet.pools.launch("m", replicas=1, actor="t")
    await fleet.reconciler.tick()
    (node,) = fleet.registry.nodes.values()
    assert node.attempts == 1 and "capacity" in (node.last_error or "")
    for _ in range(MAX_ATTEMPTS):
        await fleet.reconciler.tick()
    async with fleet.registry.sessions() as s:
        row = (await s.execute(select(Node).where(Node.id == node.id))).scalar_one()
    assert row.state == NodeState.TERMINATED and row.attempts == MAX_ATTEMPTS
    assert "gave up" in (row.last_error or "")


async def test_scale_down_drains_surplus_and_orphans_are_collected(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=3, actor="t")
    await fleet.reconciler.tick()
    await fleet.register_all()
    fleet.provider.clusters["cic-orphan"] = ClusterStatus("cic-orphan", ClusterState.UP)
    fleet.provider.clusters["other-team"] = ClusterStatus("other-team", ClusterState.UP)
    await fleet.pools.scale("m", 1, actor="t")
    await fleet.reconciler.tick()
    states = sorted(str(n.state) for n in fleet.registry.nodes.values())
    assert states == ["draining", "draining", "ready"]
    assert "cic-orphan" in fleet.provider.terminated
    assert "other-team" not in fleet.provider.terminated


async def test_preempted_cluster_is_replaced(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=1, actor="t")
    await fleet.reconciler.tick()
    ((node_id, _),) = (await fleet.register_all()).items()
    cluster = fleet.registry.get(node_id).cluster
    fleet.provider.clusters[cluster] = ClusterStatus(cluster, ClusterState.STOPPED)  # type: ignore[index,arg-type]
    await fleet.reconciler.tick()
    assert node_id not in {n.id for n in fleet.registry.nodes.values() if n.state != "terminated"}
    assert len(fleet.provider.launches) == 2


async def test_heartbeats_reach_the_database_in_batches(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=2, actor="t")
    await fleet.reconciler.tick()
    tokens = await fleet.register_all()
    for node_id, token in tokens.items():
        await fleet.registry.heartbeat(node_id, token, Heartbeat(running=7, kv_cache=0.5))
    assert await fleet.registry.flush() == 2
    assert await fleet.registry.flush() == 0
    async with fleet.registry.sessions() as s:
        rows = (await s.execute(select(Node.running, Node.kv_cache))).all()
    assert sorted(rows) == [(7, 0.5), (7, 0.5)]


async def test_two_replicas_agree_through_the_database(fleet: Fleet, sessions, clock) -> None:  # type: ignore[no-untyped-def]
    await fleet.pools.launch("m", replicas=1, actor="t")
    await fleet.reconciler.tick()
    other = Registry(sessions, clock=clock, heartbeat_interval=BEAT)
    await other.refresh()
    ((node_id, token),) = (await fleet.register_all()).items()
    # The agent registered through replica A; its heartbeats land on replica B.
    await other.heartbeat(node_id, token, Heartbeat(running=4))
    assert other.get(node_id).state is NodeState.READY and other.get(node_id).running == 4
    await fleet.registry.begin_drain(node_id, reason="operator")
    clock.advance(1)
    await other.refresh()  # incremental: only what changed
    assert other.get(node_id).state is NodeState.DRAINING


async def test_regions_are_filled_evenly_and_the_provider_s_place_and_price_recorded(
    fleet: Fleet,
) -> None:
    await fleet.pools.launch("m", replicas=3, regions=["eu", "us"], actor="t")
    await fleet.reconciler.tick()
    assert sorted(s.region for s in fleet.provider.launches) == ["eu", "eu", "us"]
    live = list(fleet.registry.nodes.values())
    assert {(n.zone, n.price_per_hour) for n in live} == {
        ("eu-a", Decimal("1.25")),
        ("us-a", Decimal("1.25")),
    }
    us = next(n for n in live if n.region == "us")
    fleet.provider.clusters.pop(us.cluster)  # type: ignore[arg-type]  # the us node is preempted
    await fleet.reconciler.tick()
    live = [n for n in fleet.registry.nodes.values() if n.state is NodeState.REGISTERING]
    assert sorted(n.region for n in live) == ["eu", "eu", "us"]  # replaced where it was missing


async def test_autoscaler_placements_choose_zone_and_pricing_and_move_after_preemption(
    fleet: Fleet,
) -> None:
    """Where the autoscaler says: 2 spot in zone a, 1 on-demand in zone b. When zone a's spot
    node is preempted and the autoscaler moves spot to zone c, the replacement lands in c."""
    await fleet.pools.launch("m", replicas=0, regions=["us"], actor="t")
    placements = [
        {"region": "us", "zone": "us-a", "spot": True, "count": 2},
        {"region": "us", "zone": "us-b", "spot": False, "count": 1},
    ]
    await fleet.pools.scale("m", 3, placements=placements, actor="autoscaler")
    await fleet.reconciler.tick()
    launched = sorted((s.zone, s.spot) for s in fleet.provider.launches)
    assert launched == [("us-a", True), ("us-a", True), ("us-b", False)]
    await fleet.register_all()

    lost = next(n for n in fleet.registry.nodes.values() if n.spot)
    fleet.provider.clusters.pop(lost.cluster)  # type: ignore[arg-type]  # preempted
    placements[0] = {"region": "us", "zone": "us-a", "spot": True, "count": 1}
    placements.append({"region": "us", "zone": "us-c", "spot": True, "count": 1})
    await fleet.pools.scale("m", 3, placements=placements, actor="autoscaler")
    await fleet.reconciler.tick()
    assert (fleet.provider.launches[-1].zone, fleet.provider.launches[-1].spot) == ("us-c", True)
    assert len(fleet.provider.launches) == 4

    # Scaling down to the on-demand node alone drains the spot nodes, never the on-demand one.
    await fleet.pools.scale(
        "m", 1, placements=[{"region": "us", "zone": "us-b", "spot": False, "count": 1}], actor="t"
    )
    await fleet.reconciler.tick()
    kept = [n for n in fleet.registry.nodes.values() if n.state is NodeState.READY]
    assert [(n.zone, n.spot) for n in kept] == [("us-b", False)]


async def test_an_operator_s_scale_clears_placements_and_spreads_by_region(fleet: Fleet) -> None:
    await fleet.pools.launch("m", replicas=0, regions=["eu", "us"], actor="t")
    await fleet.pools.scale(
        "m", 1, placements=[{"region": "us", "zone": "us-b", "spot": True, "count": 1}], actor="a"
    )
    status = await fleet.pools.scale("m", 2, actor="operator")
    assert status["placements"] == []
    await fleet.reconciler.tick()
    assert sorted(s.region for s in fleet.provider.launches) == ["eu", "us"]
