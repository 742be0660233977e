"""Plans and overrides through the admin API, on both databases, and what the limiter then
applies to a real key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from fleet import RateLimited, hash_key, load_settings
from fleet.limits import LimitRequest

TOKEN = "test-admin-token-0123456789"


@pytest.fixture
async def admin(database_url: str, cic_home: Path) -> AsyncIterator[AsyncTestClient]:
    from fleet.db import upgrade

    await upgrade(database_url)
    settings = load_settings(database_url=database_url, admin_token=TOKEN)
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client


async def test_limits_need_the_admin_token(admin: AsyncTestClient) -> None:
    resp = await admin.get("/admin/plans", headers={"authorization": ""})
    assert resp.status_code == 401


async def test_plans_are_seeded_and_editable(admin: AsyncTestClient) -> None:
    plans = (await admin.get("/admin/plans")).json()
    free = next(p for p in plans if p["plan"] == "free" and p["layer"] == "tenant")
    assert free["rpm"] == 60 and free["concurrency"] == 4
    resp = await admin.put("/admin/plans/free", json={"rpm": 120, "tpd": None})
    assert resp.status_code == 200, resp.text
    assert resp.json()["rpm"] == 120 and resp.json()["tpd"] is None
    bad = await admin.put("/admin/plans/free", json={"rpm": -5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
    zero = await admin.put("/admin/limits", json={"global": True, "rpm": 0})
    assert zero.status_code == 400 and zero.json()["error"]["param"] == "rpm"
    huge = await admin.put("/admin/plans/free", json={"concurrency": 2**40})
    assert huge.status_code == 400 and huge.json()["error"]["param"] == "concurrency"


async def test_overrides_per_layer_apply_to_the_key(admin: AsyncTestClient) -> None:
    await admin.post("/admin/tenants", json={"name": "acme", "plan": "pro"})
    await admin.post("/admin/tenants/acme/environments", json={"name": "dev"})
    created = (await admin.post("/admin/tenants/acme/keys", json={"environment": "dev"})).json()
    key_id = created["id"]

    assert (await admin.put("/admin/limits", json={"global": True, "rpm": 5000})).status_code == 200
    env = await admin.put(
        "/admin/limits", json={"tenant": "acme", "environment": "dev", "concurrency": 2}
    )
    assert env.status_code == 200, env.text
    key = await admin.put("/admin/limits", json={"key": key_id, "rpm": 3, "tpd": -1})
    assert key.json()["override"] == {
        "rpm": 3,
        "tpm": None,
        "rpd": None,
        "tpd": -1,
        "concurrency": None,
    }

    shown = (await admin.get("/admin/limits", params={"key": key_id})).json()
    assert [v["layer"] for v in shown] == ["global", "tenant", "environment", "key"]
    assert shown[0]["effective"]["rpm"] == 5000
    assert shown[1]["plan"] == "pro" and shown[1]["effective"]["rpm"] == 1000
    assert shown[2]["target"] == "acme/dev" and shown[2]["effective"]["concurrency"] == 2
    assert shown[3]["effective"]["rpm"] == 3

    # back to the plan: null inherits; an override with nothing left disappears
    await admin.put("/admin/limits", json={"key": key_id, "rpm": None, "tpd": None})
    shown = (await admin.get("/admin/limits", params={"key": key_id})).json()
    assert shown[3]["override"] is None and shown[3]["effective"]["rpm"] is None

    audit = [a["action"] for a in (await admin.get("/admin/audit")).json()]
    assert audit.count("limits.set") == 4


async def test_clearing_a_layer_without_an_override_is_harmless(admin: AsyncTestClient) -> None:
    resp = await admin.put("/admin/limits", json={"global": True, "rpm": None, "tpm": None})
    assert resp.status_code == 200, resp.text
    assert resp.json()["override"] is None


async def test_unknown_targets_are_404(admin: AsyncTestClient) -> None:
    resp = await admin.get("/admin/limits", params={"tenant": "nobody"})
    assert resp.status_code == 404 and resp.json()["error"]["param"] == "tenant"
    resp = await admin.put("/admin/limits", json={"rpm": 1})
    assert resp.status_code == 400


async def test_the_limiter_applies_plan_and_overrides(services) -> None:
    tenancy, limits, limiter = services.tenancy, services.limits, services.limiter
    await tenancy.create_tenant("acme", plan="free", actor="t")
    await tenancy.create_environment("acme", "dev", actor="t")
    key, plaintext = await tenancy.create_key("acme", environment="dev", actor="t")
    info = await tenancy.resolve(hash_key(plaintext))

    def req() -> LimitRequest:
        return LimitRequest(key=info, model="m", estimated_tokens=10)

    env = await limits.target(tenant="acme", environment="dev")
    await limits.set_override(env, {"concurrency": 2}, actor="t")
    adms = [await limiter.acquire(req()), await limiter.acquire(req())]
    with pytest.raises(RateLimited, match="2 concurrent requests on the environment layer"):
        await limiter.acquire(req())
    for adm in adms:
        await limiter.release(adm, used_tokens=5)

    await limits.set_override(await limits.target(key=key.id), {"rpm": 3}, actor="t")
    adm = await limiter.acquire(req())
    assert adm.headers["x-ratelimit-limit-requests"] == "3"
    assert adm.headers["x-ratelimit-remaining-requests"] == "0"  # 2 earlier + this one
    await limiter.release(adm, used_tokens=5)
    with pytest.raises(RateLimited, match="3 requests per minute on the key layer"):
        await limiter.acquire(req())

    # the free plan's tenant layer (60 rpm) still applies once the key's override is lifted
    await limits.set_override(await limits.target(key=key.id), {"rpm": -1}, actor="t")
    adm = await limiter.acquire(req())
    assert adm.headers["x-ratelimit-limit-requests"] == "60"
