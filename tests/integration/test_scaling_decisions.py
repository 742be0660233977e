"""Autoscaler decisions are kept in the database for every replica's console: a changed
decision is stored, a repeated one is not, and each pool keeps only its newest rows."""

from __future__ import annotations

from fleet.autoscaler import Placement, ScalingDecision
from fleet.scaling_decisions import DecisionLog, recent_decisions


def _decision(model: str, target: int, reason: str = "load") -> ScalingDecision:
    return ScalingDecision(
        model=model,
        desired=target,
        target=target,
        spot=target,
        on_demand=0,
        placements=(Placement("us-east-1", "a", True, target),),
        reason=reason,
    )


async def test_decisions_are_stored_when_they_change_and_trimmed(services) -> None:  # type: ignore[no-untyped-def]
    log = DecisionLog(services.sessions, clock=services.clock, keep=3)
    assert await log.record(_decision("m", 1))
    assert not await log.record(_decision("m", 1))  # a steady pool writes nothing
    for target in (2, 3, 4, 5):
        assert await log.record(_decision("m", target, reason=f"running {target}"))
    await log.record(_decision("other", 1))

    rows = await recent_decisions(services.sessions, model="m")
    assert [r.target for r in rows] == [5, 4, 3]  # newest first, only `keep` of them
    assert rows[0].reason == "running 5"
    assert rows[0].placements == [{"region": "us-east-1", "zone": "a", "spot": True, "count": 5}]
    assert {r.model for r in await recent_decisions(services.sessions)} == {"m", "other"}


async def test_the_fleet_autoscaler_records_what_it_decides(services) -> None:  # type: ignore[no-untyped-def]
    from fleet.autoscaling_job import fleet_autoscaling
    from fleet.scaling import ScalingService

    await services.fleet.pools.launch("m", replicas=0, provider="local", actor="t")
    await ScalingService(services.sessions).set("m", actor="t", min_replicas=1, max_replicas=2)
    job = fleet_autoscaling(services)
    (decision,) = await job.tick()
    await job.tick()

    (row,) = await recent_decisions(services.sessions, model="m")
    assert (row.target, row.reason) == (decision.target, decision.reason)
    assert row.target == 1
    status = await services.fleet.pools.status("m")
    assert status["pools"][0]["replicas"] == 1
