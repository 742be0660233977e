"""Billing through the real app: /v1/usage shows the caller's tenant only, the credit gate
answers 429 insufficient_quota, and Stripe webhooks suspend and restore tenants."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import uvicorn
from sqlalchemy import select

from agent.simulator import SimulatorConfig, start_simulator
from api.app import create_app
from fleet import load_settings
from fleet.billing.tables import BillingAccount
from fleet.tables import UsageRecord
from tests.conftest import free_port

MODEL = "m"
SECRET = "whsec_test_secret"


@pytest.fixture
def database_url(tmp_path) -> str:
    """The gateway's behaviour does not depend on the store (reports are covered on both)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'cic.db'}"


@dataclass
class Plane:
    url: str
    keys: dict[str, str]
    tenants: dict[str, str]
    http: aiohttp.ClientSession
    app: Any
    admin: str

    async def chat(self, tenant: str, **body: Any) -> aiohttp.ClientResponse:
        payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
        return await self.http.post(
            f"{self.url}/v1/chat/completions",
            json=payload,
            headers={"authorization": f"Bearer {self.keys[tenant]}"},
        )

    async def usage(self, tenant: str, query: str = "") -> aiohttp.ClientResponse:
        return await self.http.get(
            f"{self.url}/v1/usage{query}", headers={"authorization": f"Bearer {self.keys[tenant]}"}
        )

    async def webhook(self, payload: bytes, signature: str | None) -> aiohttp.ClientResponse:
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers["stripe-signature"] = signature
        return await self.http.post(f"{self.url}/webhooks/stripe", data=payload, headers=headers)


@asynccontextmanager
async def plane(services, **overrides: Any) -> AsyncIterator[Plane]:
    await services.catalog.create_model(
        MODEL, input_per_1m=Decimal("1"), output_per_1m=Decimal("2"), actor="t"
    )
    keys, tenants = {}, {}
    for name in ("acme", "globex"):
        tenant = await services.tenancy.create_tenant(name, plan="pro", actor="t")
        tenants[name] = tenant.id
        _, keys[name] = await services.tenancy.create_key(name, actor="t")
    config = SimulatorConfig(model=MODEL, ttft_ms=0, itl_ms=overrides.pop("itl_ms", 0))
    async with start_simulator(config) as node_url:
        await services.nodes.add_static(MODEL, node_url, actor="t")
        settings = load_settings(
            database_url=services.settings.effective_database_url,
            admin_token="admin-token-for-tests-0123456789",
            stripe_webhook_secret=SECRET,
            usage_flush_seconds=0.05,
            **overrides,
        )
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, ws="none")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done(), "server failed to start"
            await asyncio.sleep(0.01)
        try:
            async with aiohttp.ClientSession() as http:
                yield Plane(
                    f"http://127.0.0.1:{port}",
                    keys,
                    tenants,
                    http,
                    app,
                    "admin-token-for-tests-0123456789",
                )
        finally:
            server.should_exit = True
            await task


async def test_v1_usage_shows_only_the_callers_tenant(services) -> None:
    async with plane(services) as p:
        for _ in range(3):
            assert (await p.chat("acme", max_tokens=4)).status == 200
        resp = await p.chat("globex", max_tokens=7, stream=True)
        assert resp.status == 200 and (await resp.read()).endswith(b"data: [DONE]\n\n")
        await p.app.state.services.usage.flush()
        acme = await (await p.usage("acme")).json()
        globex = await (await p.usage("globex", f"?tenant={p.tenants['acme']}&by=hour")).json()
        assert acme["tenant_id"] == p.tenants["acme"]
        [row] = acme["data"]
        assert row["group"] == MODEL and row["requests"] == 3 and row["completion_tokens"] == 12
        # 3 x (prompt x $1/1M + 4 x $2/1M): exact decimal text
        assert Decimal(row["cost"]) == Decimal(row["prompt_tokens"] + 24) / Decimal(1_000_000)
        # another tenant's id in the query changes nothing: the key decides the tenant
        assert globex["tenant_id"] == p.tenants["globex"]
        assert [r["requests"] for r in globex["data"]] == [1]
        assert globex["data"][0]["completion_tokens"] == 7
        resp = await p.http.get(f"{p.url}/v1/usage", headers={"authorization": "Bearer nope"})
        assert resp.status == 401
        resp = await p.usage("acme", "?by=tenant")
        assert resp.status == 400


async def test_no_credit_and_no_payment_method_is_429_insufficient_quota(services) -> None:
    async with plane(services, billing_enforce_quota=True) as p:
        resp = await p.chat("acme", max_tokens=2)
        assert resp.status == 429
        err = (await resp.json())["error"]
        assert err["code"] == "insufficient_quota" and err["type"] == "insufficient_quota"
        grant = await p.http.post(
            f"{p.url}/admin/tenants/acme/credits",
            json={"amount": "0.50", "kind": "free_tier"},
            headers={"authorization": f"Bearer {p.admin}"},
        )
        assert grant.status == 201 and Decimal((await grant.json())["balance"]) == Decimal("0.5")
        assert (await p.chat("acme", max_tokens=2)).status == 200
        # a payment method on file serves without credit
        async with services.sessions() as s:
            s.add(BillingAccount(tenant_id=p.tenants["globex"], has_payment_method=True))
            await s.commit()
        assert (await p.chat("globex", max_tokens=2)).status == 200


def _signed(
    event: dict[str, Any], secret: str = SECRET, at: int | None = None
) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    ts = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={ts},v1={mac}"


def _event(eid: str, kind: str, customer: str) -> dict[str, Any]:
    return {
        "id": eid,
        "object": "event",
        "type": kind,
        "data": {"object": {"object": "invoice", "customer": customer}},
    }


async def test_webhook_signatures_are_checked(services) -> None:
    async with plane(services) as p:
        event = _event("evt_1", "invoice.paid", "cus_unknown")
        payload, good = _signed(event)
        assert (await p.webhook(payload, None)).status == 400  # unsigned
        _, forged = _signed(event, secret="whsec_someone_else")
        assert (await p.webhook(payload, forged)).status == 400
        _, stale = _signed(event, at=int(time.time()) - 3600)
        assert (await p.webhook(payload, stale)).status == 400
        tampered = payload.replace(b"invoice.paid", b"invoice.payment_failed")
        assert (await p.webhook(tampered, good)).status == 400
        resp = await p.webhook(payload, good)
        assert resp.status == 200 and (await resp.json())["status"] == "ignored"
        resp = await p.webhook(payload, good)  # replayed
        assert resp.status == 200 and (await resp.json())["status"] == "duplicate"


async def test_failed_payment_suspends_after_grace_and_payment_restores(services) -> None:
    async with plane(services, billing_dunning_grace_seconds=0) as p:
        async with services.sessions() as s:
            s.add(BillingAccount(tenant_id=p.tenants["acme"], stripe_customer_id="cus_acme"))
            await s.commit()
        assert (await p.chat("acme", max_tokens=2)).status == 200
        payload, sig = _signed(_event("evt_f", "invoice.payment_failed", "cus_acme"))
        resp = await p.webhook(payload, sig)
        assert (await resp.json())["status"] == "handled"
        await asyncio.sleep(0.1)
        resp = await p.chat("acme", max_tokens=2)
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "tenant_suspended"
        assert (await p.chat("globex", max_tokens=2)).status == 200
        payload, sig = _signed(_event("evt_p", "invoice.paid", "cus_acme"))
        assert (await (await p.webhook(payload, sig)).json())["status"] == "handled"
        await asyncio.sleep(0.1)
        assert (await p.chat("acme", max_tokens=2)).status == 200
        async with services.sessions() as s:
            account = await s.get(BillingAccount, p.tenants["acme"])
        assert account.has_payment_method and account.delinquent_since is None


async def test_a_stream_cut_by_the_client_is_billed_for_what_was_sent(services) -> None:
    async with plane(services, itl_ms=20) as p:
        resp = await p.chat("acme", max_tokens=200, stream=True)
        got = 0
        async for line in resp.content:
            got += line.startswith(b"data: ")
            if got == 5:
                break
        resp.close()  # the client goes away mid-stream
        await asyncio.sleep(0.3)
        await p.app.state.services.usage.flush()
        async with services.sessions() as s:
            row = (await s.execute(select(UsageRecord))).scalars().one()
    assert row.status == 499 and row.stream
    assert 5 <= row.completion_tokens < 200  # what was sent, not what was asked for
    assert row.cost > 0
