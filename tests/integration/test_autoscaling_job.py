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


async def test_request_rate_policy_sees_the_requests_the_gateway_served(database_url: str) -> None:
    """A pool scaled by request rate grows with what the gateway actually served."""
    from fleet import build_services, load_settings
    from fleet.autoscaling_job import fleet_autoscaling

    clock = FakeClock(start=1_800_000_000.0)
    settings = load_settings(database_url=database_url)
    async with build_services(settings, clock=clock, migrate=True) as services:
        await ScalingService(services.sessions, clock=clock).set(
            "m", actor="t", policy="request-rate", target=2, min_replicas=0, max_replicas=8
        )
        for _ in range(600):  # 10 requests/s over the last minute
            services.metrics.request_done(
                model="m", endpoint="chat.completions", status=200, latency_s=0.2
            )
        assert services.rates is not None
        await services.rates.publish()
        clock.advance(10)
        job = fleet_autoscaling(services)
        decision = {d.model: d for d in await job.tick()}["m"]
        assert decision.desired == 5  # 10 req/s at 2 req/s per node
