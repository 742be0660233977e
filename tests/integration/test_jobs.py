"""Jobs record their runs for operators; the embedded store's single process leads."""

from __future__ import annotations

import asyncio

import pytest

from fleet.clock import FakeClock
from fleet.db import create_engine, session_factory, upgrade
from fleet.jobs import JobRegistry, JobScheduler, job_report
from fleet.leader import LeaderElector, current_leader


async def test_runs_and_failures_are_recorded(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    calls: list[str] = []

    async def ok() -> None:
        calls.append("ok")

    async def broken() -> None:
        raise RuntimeError("node registry unreachable")

    registry = JobRegistry()
    registry.register("stale-node-sweep", ok, every=10)
    registry.register("billing-export", broken, every=60)
    with pytest.raises(ValueError):
        registry.register("billing-export", ok, every=60)
    scheduler = JobScheduler(registry, sessions, identity="me", clock=FakeClock())
    try:
        for job in registry:
            await scheduler.run_once(job)
        await scheduler.run_once(next(iter(registry)))
        report = {r.name: r for r in await job_report(sessions)}
    finally:
        await engine.dispose()
    assert calls == ["ok", "ok"]
    assert report["stale-node-sweep"].runs == 2 and report["stale-node-sweep"].last_ok
    failed = report["billing-export"]
    assert (failed.runs, failed.failures, failed.last_ok) == (1, 1, False)
    assert failed.last_error == "RuntimeError: node registry unreachable"
    assert failed.leader == "me"


async def test_scheduler_runs_jobs_only_between_elected_and_deposed(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cic.db"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    ran = asyncio.Event()

    async def tick() -> None:
        ran.set()

    registry = JobRegistry()
    registry.register("autoscaler-tick", tick, every=3600)
    scheduler = JobScheduler(registry, sessions, identity="solo")
    elector = LeaderElector(
        url,
        sessions,
        lock_id=1,
        identity="solo",
        on_elected=scheduler.start,
        on_deposed=scheduler.stop,
    )
    try:
        await elector.start()
        await asyncio.wait_for(ran.wait(), timeout=10)
        assert elector.is_leader and scheduler.running
        assert (await current_leader(sessions)).holder == "solo"  # type: ignore[union-attr]
        await elector.stop()
        assert not elector.is_leader and not scheduler.running
    finally:
        await elector.stop()
        await engine.dispose()


async def test_stopping_lets_a_running_job_finish_and_record_its_run(tmp_path: object) -> None:
    """A deposed or stopping leader does not cut a job off in the middle of its work."""
    url = f"sqlite+aiosqlite:///{tmp_path}/cic.db"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    started, finished = asyncio.Event(), []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(True)

    registry = JobRegistry()
    registry.register("reconciler", slow, every=3600)
    scheduler = JobScheduler(registry, sessions, identity="me")
    try:
        await scheduler.start()
        await asyncio.wait_for(started.wait(), 5)
        await scheduler.stop()
        assert finished == [True]
        report = {r.name: r for r in await job_report(sessions)}
        assert report["reconciler"].runs == 1 and report["reconciler"].last_ok
    finally:
        await engine.dispose()
