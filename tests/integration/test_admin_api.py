"""The admin API over both stores, through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from fleet import load_settings

TOKEN = "test-admin-token-0123456789"


@pytest.fixture
async def admin(database_url: str, cic_home: Path) -> AsyncIterator[AsyncTestClient]:
    from fleet.db import upgrade

    await upgrade(database_url)
    settings = load_settings(database_url=database_url, admin_token=TOKEN)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client


async def test_admin_requires_the_token(admin: AsyncTestClient) -> None:
    for headers in ({"authorization": ""}, {"authorization": "Bearer wrong-token-xxxxxxxx"}):
        resp = await admin.get("/admin/tenants", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "invalid_admin_token"


async def test_tenant_lifecycle_and_audit(admin: AsyncTestClient) -> None:
    resp = await admin.post("/admin/tenants", json={"name": "acme"}, headers={"x-cic-actor": "ana"})
    assert resp.status_code == 201, resp.text
    tenant = resp.json()
    assert tenant["name"] == "acme" and tenant["status"] == "active"

    dup = await admin.post("/admin/tenants", json={"name": "acme"})
    assert dup.status_code == 409 and dup.json()["error"]["param"] == "name"

    envs = (await admin.get("/admin/tenants/acme/environments")).json()
    assert [e["name"] for e in envs] == ["prod"]
    assert (
        await admin.post("/admin/tenants/acme/environments", json={"name": "dev"})
    ).status_code == 201

    assert (await admin.post("/admin/tenants/acme/suspend")).json()["status"] == "suspended"
    assert (await admin.post("/admin/tenants/acme/restore")).json()["status"] == "active"
    assert (await admin.delete("/admin/tenants/acme")).json()["status"] == "deleted"
    assert (await admin.get("/admin/tenants/acme")).status_code == 404

    audit = (await admin.get("/admin/audit")).json()
    actions = [a["action"] for a in reversed(audit)]
    assert actions == [
        "tenant.create",
        "environment.create",
        "tenant.suspended",
        "tenant.active",
        "tenant.deleted",
    ]
    assert audit[-1]["actor"] == "ana"


async def test_key_plaintext_is_shown_once(admin: AsyncTestClient) -> None:
    await admin.post("/admin/tenants", json={"name": "acme"})
    created = (await admin.post("/admin/tenants/acme/keys", json={"name": "ci"})).json()
    assert created["key"].startswith(created["prefix"])
    listed = (await admin.get("/admin/tenants/acme/keys")).json()
    assert len(listed) == 1 and "key" not in listed[0] and "key_hash" not in listed[0]
    assert listed[0]["environment"] == "prod"
    revoked = (await admin.delete(f"/admin/keys/{created['id']}")).json()
    assert revoked["status"] == "revoked"
    missing = await admin.post("/admin/tenants/acme/keys", json={"environment": "nope"})
    assert missing.status_code == 404


async def test_models_prices_and_static_nodes(admin: AsyncTestClient) -> None:
    body = {
        "name": "meta-llama/Llama-3.1-8B-Instruct",
        "context_length": 8192,
        "input_per_1m": "0.10",
        "output_per_1m": "0.30",
    }
    assert (await admin.post("/admin/models", json=body)).status_code == 201
    price = await admin.post(
        "/admin/prices/meta-llama/Llama-3.1-8B-Instruct",
        json={"input_per_1m": "0.12", "output_per_1m": "0.35", "region": "us-east"},
    )
    assert price.status_code == 201, price.text
    shown = (await admin.get("/admin/models/meta-llama/Llama-3.1-8B-Instruct")).json()
    from decimal import Decimal

    prices = {p["region"]: Decimal(p["output_per_1m"]) for p in shown["prices"]}
    assert prices == {"*": Decimal("0.30"), "us-east": Decimal("0.35")}

    bad = await admin.post("/admin/models", json={"name": "x", "default_max_tokens": 0})
    assert bad.status_code == 400

    node = await admin.post(
        "/admin/nodes", json={"model": body["name"], "url": "http://127.0.0.1:9/"}
    )
    assert node.status_code == 201 and node.json()["state"] == "ready"
    unknown = await admin.post("/admin/nodes", json={"model": "nope", "url": "http://x:1"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    bad_url = await admin.post("/admin/nodes", json={"model": body["name"], "url": "ftp://x"})
    assert bad_url.status_code == 400
    assert len((await admin.get("/admin/nodes")).json()) == 1


async def test_bad_body_is_a_400_in_openai_shape(admin: AsyncTestClient) -> None:
    resp = await admin.post("/admin/tenants", json={"nam": "x"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
