"""Pool scaling knobs and the jobs report through the admin API, on both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from fleet import load_settings
from fleet.autoscaler import Zone
from fleet.db import create_engine, session_factory
from fleet.jobs import Job, JobRegistry, JobScheduler
from fleet.scaling import ScalingService, pool_config

TOKEN = "test-admin-token-0123456789"


@pytest.fixture
async def admin(database_url: str, cic_home: Path) -> AsyncIterator[AsyncTestClient]:
    from fleet.db import upgrade

    await upgrade(database_url)
    app = create_app(load_settings(database_url=database_url, admin_token=TOKEN))
    async with AsyncTestClient(app=app) as client:
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client


async def test_scale_a_pool_and_the_gateway_lets_its_requests_wait(
    admin: AsyncTestClient, database_url: str
) -> None:
    assert (await admin.post("/admin/models", json={"name": "m"})).status_code == 201
    resp = await admin.put(
        "/admin/scaling/m", json={"min_replicas": 0, "max_replicas": 4, "target": 12}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["max_replicas"] == 4 and resp.json()["target"] == 12
    resp = await admin.put("/admin/scaling/m", json={"min_replicas": 2, "regions": ["r1"]})
    assert (resp.json()["min_replicas"], resp.json()["max_replicas"]) == (2, 4)
    for _ in range(200):  # the PUT tells its replica's waiter; a concurrent re-read may lag
        if admin.app.state.services.waiter.expects("m"):
            break
        await asyncio.sleep(0.025)
    assert admin.app.state.services.waiter.expects("m")

    bad = await admin.put("/admin/scaling/m", json={"min_replicas": 9})
    assert bad.status_code == 400
    bad = await admin.put("/admin/scaling/m", json={"policy": "magic"})
    assert bad.status_code == 400 and "llm-load" in bad.json()["error"]["message"]
    assert (await admin.put("/admin/scaling/nope", json={})).status_code == 404
    listed = (await admin.get("/admin/scaling")).json()
    assert [(r["model"], r["min_replicas"], r["regions"]) for r in listed] == [("m", 2, ["r1"])]

    audit = (await admin.get("/admin/audit")).json()
    assert any(a["action"] == "pool.scale" for a in audit)

    engine = create_engine(database_url)  # the app's engine lives on the client's loop
    try:
        row = await ScalingService(session_factory(engine)).get("m")
    finally:
        await engine.dispose()
    cfg = pool_config(row, [Zone("r1", "a"), Zone("r2", "b")])
    assert [z.region for z in cfg.zones] == ["r1"] and cfg.ttft_slo_s == 2.0


async def test_jobs_report_shows_leader_and_last_runs(
    admin: AsyncTestClient, database_url: str
) -> None:
    for _ in range(200):  # the app campaigns at start; on SQLite it is the leader at once
        report = (await admin.get("/admin/jobs")).json()
        if report["leader"] is not None:
            break
        await asyncio.sleep(0.025)
    assert report["leader"]["holder"] and report["leader"]["since"]
    engine = create_engine(database_url)
    try:

        async def sweep() -> None:
            return None

        scheduler = JobScheduler(JobRegistry(), session_factory(engine), identity="host:1")
        await scheduler.run_once(Job("stale-node-sweep", sweep, 10))
    finally:
        await engine.dispose()
    jobs = {j["name"]: j for j in (await admin.get("/admin/jobs")).json()["jobs"]}
    sweep_run = jobs["stale-node-sweep"]
    assert (sweep_run["runs"], sweep_run["last_ok"], sweep_run["leader"]) == (1, True, "host:1")
    # The app's own leader runs the fleet's reconciler and the autoscaler as jobs.
    for _ in range(200):
        jobs = {j["name"]: j for j in (await admin.get("/admin/jobs")).json()["jobs"]}
        if {"reconciler", "autoscaler"} <= set(jobs):
            break
        await asyncio.sleep(0.025)
    assert jobs["reconciler"]["last_ok"] and jobs["autoscaler"]["last_ok"]
    assert jobs["reconciler"]["leader"] == report["leader"]["holder"]
