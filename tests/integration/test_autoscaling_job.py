"""The autoscaler tick over stored pool knobs, with fake observations and a fake clock."""

from __future__ import annotations

from fleet.autoscaler import NodeLoad, ScalingDecision, Zone
from fleet.autoscaling_job import AutoscalingJob, Observation
from fleet.clock import FakeClock
from fleet.db import create_engine, session_factory, upgrade
from fleet.scaling import ScalingService


class Waiters:
    """The gateway's waiting room as the job reads it."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def waiting(self, model: str) -> int:
        return self.count.get(model, 0)


ZONES = [
    Zone("aws-us-east-1", "us-east-1a"),
    Zone("aws-us-east-1", "us-east-1b"),
    Zone("gcp-us-central1", "us-central1-a"),
]


async def test_tick_scales_from_zero_then_follows_load_with_hysteresis(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    clock = FakeClock()
    try:
        scaling = ScalingService(session_factory(engine), clock=clock)
        await scaling.set(
            "m",
            actor="t",
            min_replicas=0,
            max_replicas=6,
            target=10,
            upscale_delay_s=30,
            base_on_demand=1,
        )
        await scaling.set("idle", actor="t", min_replicas=0, max_replicas=2)
        loads: dict[str, Observation] = {}
        applied: list[ScalingDecision] = []

        async def observe(model: str) -> Observation:
            return loads.get(model, Observation())

        async def apply(decision: ScalingDecision) -> None:
            applied.append(decision)

        waiter = Waiters()
        job = AutoscalingJob(
            scaling,
            observe,
            apply,
            zones=lambda regions: ZONES,
            waiter=waiter,
            clock=clock,  # type: ignore[arg-type]
        )
        assert {d.model: d.target for d in await job.tick()} == {"m": 0, "idle": 0}

        waiter.count["m"] = 3  # three requests parked at the gateway
        first = {d.model: d for d in await job.tick()}["m"]
        assert (first.target, first.on_demand, first.reason) == (1, 1, "scale from zero")
        waiter.count.clear()

        busy = tuple(
            NodeLoad(
                node_id=f"n{i}",
                region="aws-us-east-1",
                zone="us-east-1a",
                running=10,
                service_s=1.0,
                spot=i > 0,
            )
            for i in range(2)
        )
        loads["m"] = Observation(nodes=busy, request_rate=40.0)  # 40 in flight -> 4 nodes
        assert {d.model: d.target for d in await job.tick()}["m"] == 1
        clock.advance(30)
        decision = {d.model: d for d in await job.tick()}["m"]
        assert (decision.target, decision.spot, decision.on_demand) == (4, 3, 1)

        job.preempted("aws-us-east-1", "us-east-1b")
        job.capacity_error("gcp-us-central1", "us-central1-a")
        decision = {d.model: d for d in await job.tick()}["m"]
        spot_zones = {p.zone for p in decision.placements if p.spot}
        assert "us-central1-a" not in spot_zones
        assert len(applied) == 10
    finally:
        await engine.dispose()
