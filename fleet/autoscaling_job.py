"""The autoscaler tick: the leader's job that turns pool scaling knobs and observed load into
scaling decisions for the reconciler.

It keeps one :class:`PoolAutoscaler` per model across ticks (hysteresis is state), re-reads
the knobs every tick, and shares one decaying zone-trouble history across pools. What it
observes and how a decision is applied are injected callables, so the registry (node loads),
the gateway (request rate, waiters) and the reconciler (desired state) plug in without this
module knowing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleet.autoscaler import NodeLoad, PoolAutoscaler, PoolSnapshot, ScalingDecision, Zone
from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.logs import get_logger
from fleet.preemptions import ZoneTrouble, place_key
from fleet.providers.skypilot import DEFAULT_TASKS_DIR
from fleet.scaling import ScalingService, pool_config
from fleet.waiter import FirstNodeWaiter

if TYPE_CHECKING:
    from fleet.services import Services

log = get_logger("cicfleet.autoscaling")


@dataclass(frozen=True, slots=True)
class Observation:
    """What the fleet sees of one model now: its nodes' load and the gateway's request rate."""

    nodes: tuple[NodeLoad, ...] = ()
    request_rate: float = 0.0


Observe = Callable[[str], Awaitable[Observation]]
Apply = Callable[[ScalingDecision], Awaitable[None]]
ZonesOf = Callable[[Sequence[str]], Sequence[Zone]]


@dataclass
class AutoscalingJob:
    """Call :meth:`tick` periodically (register it on ``services.jobs``)."""

    scaling: ScalingService
    observe: Observe
    apply: Apply
    zones: ZonesOf
    waiter: FirstNodeWaiter
    clock: Clock = SYSTEM_CLOCK
    trouble: ZoneTrouble = field(default_factory=ZoneTrouble)
    capacity_errors: dict[str, float] = field(default_factory=dict)
    _scalers: dict[str, PoolAutoscaler] = field(default_factory=dict)

    def preempted(self, region: str, zone: str | None) -> None:
        """The reconciler saw a spot node preempted (or got its notice) there."""
        self.trouble.record(place_key(region, zone), self.clock.now())

    def capacity_error(self, region: str, zone: str | None) -> None:
        """A spot launch there failed for lack of capacity."""
        self.capacity_errors[place_key(region, zone)] = self.clock.now()

    async def tick(self) -> list[ScalingDecision]:
        """Decide for every scaled pool and apply each decision; one pool failing does not
        stop the others."""
        now = self.clock.now()
        decisions = []
        rows = await self.scaling.list()
        for gone in set(self._scalers) - {r.model for r in rows}:
            del self._scalers[gone]
        for row in rows:
            try:
                config = pool_config(row, self.zones(row.regions))
                scaler = self._scalers.get(row.model)
                if scaler is None:
                    scaler = self._scalers[row.model] = PoolAutoscaler(config, trouble=self.trouble)
                else:
                    scaler.reconfigure(config)
                seen = await self.observe(row.model)
                snapshot = PoolSnapshot(
                    config,
                    nodes=seen.nodes,
                    waiting=self.waiter.waiting(row.model),
                    request_rate=seen.request_rate,
                    capacity_errors=dict(self.capacity_errors),
                )
                decision = scaler.decide(snapshot, now)
                await self.apply(decision)
                decisions.append(decision)
            except Exception as exc:
                log.warning(
                    "autoscaling a pool failed",
                    extra={"model": row.model, "error": f"{type(exc).__name__}: {exc}"[:300]},
                )
        return decisions


def fleet_autoscaling(services: Services) -> AutoscalingJob:
    """The tick wired to the fleet: node loads from the registry's view (running and waiting
    from heartbeats), the cluster's request rate (:mod:`fleet.request_rates`), the decision's
    target and placements stored on the pool (the reconciler launches where they say), zones
    from the SkyPilot task files."""
    from fleet.providers.skypilot import task_zones
    from fleet.scaling_decisions import DecisionLog
    from fleet.tables import NodeState, Pool

    fleet = services.fleet
    assert fleet is not None
    known = task_zones(services.settings.skypilot_tasks_dir or DEFAULT_TASKS_DIR)

    async def observe(model: str) -> Observation:
        loads = tuple(
            NodeLoad(
                node_id=n.id,
                region=n.region,
                zone=n.zone,
                spot=n.spot,
                ready=n.state == NodeState.READY,
                since=n.state_changed_at,
                running=n.running,
                queued=n.waiting,
                notice=n.state == NodeState.DRAINING,
            )
            for n in fleet.registry.of_model(model)
            if n.provider != "static" and n.state not in (NodeState.TERMINATED,)
        )
        rate = await services.rates.rate(model) if services.rates is not None else 0.0
        return Observation(nodes=loads, request_rate=rate)

    decisions = DecisionLog(services.sessions, clock=services.clock)

    async def apply(decision: ScalingDecision) -> None:
        placements = [
            {"region": p.region, "zone": p.zone, "spot": p.spot, "count": p.count}
            for p in decision.placements
        ]
        await decisions.record(decision)  # what the console shows, on every replica
        async with services.sessions() as session:
            pool = await session.get(Pool, decision.model)
        if pool is not None and (pool.replicas, pool.placements) != (decision.target, placements):
            await fleet.pools.scale(
                decision.model, decision.target, placements=placements, actor="autoscaler"
            )

    def zones(regions: Sequence[str]) -> list[Zone]:
        out = [Zone(r, z) for region in regions for r, z in known.get(region, [(region, None)])]
        return out or [Zone("local")]

    return AutoscalingJob(
        ScalingService(services.sessions, clock=services.clock),
        observe,
        apply,
        zones,
        services.waiter,
        clock=services.clock,
    )
