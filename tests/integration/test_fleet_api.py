"""The fleet's admin routes and node API through the real app (reconciler not running, so
the desired state is what the test sees)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from fleet import load_settings

TOKEN = "test-admin-token-0123456789"


@pytest.fixture
async def admin(cic_home: Path, tmp_path: Path) -> AsyncIterator[AsyncTestClient]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", admin_token=TOKEN, reconcile=False
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client


async def test_pools_launch_scale_status_down(admin: AsyncTestClient) -> None:
    for model in ("org/llama-8b", "qwen"):
        resp = await admin.post("/admin/fleet/pools", json={"model": model, "replicas": 2})
        assert resp.status_code == 201, resp.text
    resp = await admin.patch("/admin/fleet/pools/org/llama-8b", json={"replicas": 5})
    assert resp.json()["replicas"] == 5
    status = (await admin.get("/admin/fleet/status")).json()
    assert [(p["model"], p["replicas"], p["routing"]) for p in status["pools"]] == [
        ("org/llama-8b", 5, "least-loaded"),
        ("qwen", 2, "least-loaded"),
    ]
    assert (await admin.delete("/admin/fleet/pools/qwen")).json() == {"removed": ["qwen"]}
    assert (await admin.delete("/admin/fleet/pools")).json() == {"removed": ["org/llama-8b"]}
    assert (await admin.get("/admin/fleet/status")).json()["pools"] == []


async def test_bad_requests_are_clear(admin: AsyncTestClient) -> None:
    resp = await admin.post("/admin/fleet/pools", json={"model": "m", "provider": "ibm"})
    assert resp.status_code == 400 and "unknown provider" in resp.json()["error"]["message"]
    resp = await admin.post("/admin/fleet/pools", json={"model": "m", "routing": "fastest"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "routing"
    assert (await admin.patch("/admin/fleet/pools/nope", json={"replicas": 1})).status_code == 404
    assert (await admin.post("/admin/fleet/nodes/node_nope/drain")).status_code == 404


async def test_fleet_routes_need_the_admin_token_and_node_routes_a_node_token(
    admin: AsyncTestClient,
) -> None:
    resp = await admin.get("/admin/fleet/status", headers={"authorization": "Bearer nope"})
    assert resp.status_code == 401
    no_auth = {"authorization": ""}
    body = {"cluster": "cic-x", "model": "m", "url": "http://127.0.0.1:1"}
    assert (await admin.post("/internal/register", json=body, headers=no_auth)).status_code == 401
    resp = await admin.post(
        "/internal/register", json=body, headers={"authorization": "Bearer guess"}
    )
    assert resp.status_code == 401
    resp = await admin.post("/internal/heartbeats/node_x", json={}, headers=no_auth)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    resp = await admin.post(
        "/internal/heartbeats/node_x", json={}, headers={"authorization": "Bearer t"}
    )
    assert resp.status_code == 401
    resp = await admin.post(
        "/internal/heartbeats/node_x", content=b"{", headers={"authorization": "Bearer t"}
    )
    assert resp.status_code == 400
