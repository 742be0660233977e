"""The web console through the real app on both stores: sign-in, cookies, CSRF, tenant
isolation, session expiry, live fragments and the actions operators and tenants take."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from fleet import Settings, load_settings
from fleet.clock import FakeClock

TOKEN = "test-admin-token-0123456789"


class StillClock(FakeClock):
    """Moves only when a test says so: the app's background loops really sleep."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class Console:
    """The app (one lifespan) and a browser-like client; ``fresh()`` forgets its cookies, as
    another browser would start."""

    app: object
    clock: StillClock
    http: AsyncTestClient
    settings: Settings

    async def admin(self, method: str, path: str, **kw: Any) -> Any:
        """The admin API (the app runs in the client's own loop: set-up goes through HTTP)."""
        resp = await self.http.request(
            method, path, headers={"authorization": f"Bearer {TOKEN}"}, **kw
        )
        assert resp.status_code < 300, resp.text
        return resp.json()

    def fresh(self) -> AsyncTestClient:
        self.http.cookies.clear()
        return self.http

    def client(self) -> _Same:
        return _Same(self.fresh())


class _Same:
    def __init__(self, http: AsyncTestClient) -> None:
        self.http = http

    async def __aenter__(self) -> AsyncTestClient:
        return self.http

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture
async def console(database_url: str, cic_home: Path) -> AsyncIterator[Console]:
    from fleet.db import upgrade

    await upgrade(database_url)
    clock = StillClock(start=1_900_000_000.0)
    # Pools scaled here must not start real local nodes: their engine cannot start, so the
    # leader's reconciler launches no process that could outlive the test.
    settings = load_settings(
        database_url=database_url,
        admin_token=TOKEN,
        local_engine_command="/nonexistent/cicfleet-test-engine {model} {port}",
    )
    app = create_app(settings, clock=clock)
    async with AsyncTestClient(app=app, base_url="http://console.local") as http:
        yield Console(app, clock, http, settings)


def _csrf(html: str) -> str:
    match = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def _operator(client: AsyncTestClient) -> str:
    page = await client.get("/console/login")
    resp = await client.post(
        "/console/login", data={"_csrf": _csrf(page.text), "admin_token": TOKEN}
    )
    assert resp.status_code == 200 and resp.url.path == "/console/fleet", resp.text[:300]
    return _csrf(resp.text)


async def _tenant(console: Console, client: AsyncTestClient, name: str) -> tuple[str, str]:
    """Sign ``client`` in as tenant ``name`` through a one-time link; (tenant id, csrf)."""
    link = await console.admin("POST", f"/admin/tenants/{name}/login-link")
    resp = await client.get(link["path"])
    assert resp.status_code == 200 and resp.url.path == f"/console/t/{link['tenant_id']}"
    return link["tenant_id"], _csrf(resp.text)


async def test_operator_sign_in_sets_a_safe_cookie(console: Console) -> None:
    async with console.client() as client:
        page = await client.get("/console/login")
        wrong = await client.post(
            "/console/login", data={"_csrf": _csrf(page.text), "admin_token": "nope" * 8}
        )
        assert wrong.status_code == 401 and "not the admin token" in wrong.text
        no_csrf = await client.post("/console/login", data={"admin_token": TOKEN})
        assert no_csrf.status_code == 403

        page = await client.get("/console/login")
        resp = await client.post(
            "/console/login",
            data={"_csrf": _csrf(page.text), "admin_token": TOKEN},
            follow_redirects=False,
        )
        assert resp.status_code == 303 and resp.headers["location"] == "/console/fleet"
        cookie = next(
            c for c in resp.headers.get_list("set-cookie") if c.startswith("cic_console=")
        )
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert "Path=/console" in cookie

        page = await client.get("/console/login", headers={"x-forwarded-proto": "https"})
        assert "Secure" in page.headers["set-cookie"]  # the sign-in form's CSRF cookie too
        token = _csrf(page.text)
        behind_tls = await client.post(  # the client keeps Secure cookies off plain HTTP
            "/console/login",
            data={"_csrf": token, "admin_token": TOKEN},
            headers={"x-forwarded-proto": "https", "cookie": f"cic_console_login={token}"},
            follow_redirects=False,
        )
        cookie = next(
            c for c in behind_tls.headers.get_list("set-cookie") if c.startswith("cic_console=")
        )
        assert "Secure" in cookie


async def test_pages_need_a_session(console: Console) -> None:
    async with console.client() as client:
        for path in ("/console/fleet", "/console/tenants", "/console/revenue", "/console/t/x"):
            resp = await client.get(path, follow_redirects=False)
            assert resp.status_code == 303 and resp.headers["location"] == "/console/login", path
        live = await client.get("/console/fleet/live", headers={"hx-request": "true"})
        assert live.status_code == 401 and live.headers["hx-redirect"] == "/console/login"


async def test_sessions_expire_and_sign_out_ends_them(console: Console) -> None:
    async with console.client() as client:
        await _operator(client)
        assert (await client.get("/console/fleet")).status_code == 200
        console.clock.advance(console.settings.console_session_seconds + 1)
        resp = await client.get("/console/fleet", follow_redirects=False)
        assert resp.status_code == 303

        csrf = await _operator(client)
        resp = await client.post("/console/logout", data={"_csrf": csrf}, follow_redirects=False)
        assert resp.status_code == 303
        assert (await client.get("/console/fleet", follow_redirects=False)).status_code == 303


async def test_login_links_work_once_and_expire(console: Console) -> None:
    await console.admin("POST", "/admin/tenants", json={"name": "acme"})
    async with console.client() as client:
        link = await console.admin("POST", "/admin/tenants/acme/login-link")
        assert (await client.get(link["path"])).status_code == 200
        again = await console.fresh().get(link["path"])
        assert again.status_code == 401 and "used or expired" in again.text
        late = await console.admin("POST", "/admin/tenants/acme/login-link")
        console.clock.advance(console.settings.console_link_seconds + 1)
        assert (await console.fresh().get(late["path"])).status_code == 401


async def test_login_link_from_the_admin_api(console: Console) -> None:
    await console.admin("POST", "/admin/tenants", json={"name": "acme"})
    async with console.client() as client:
        refused = await client.post("/admin/tenants/acme/login-link")
        assert refused.status_code == 401
        resp = await client.post(
            "/admin/tenants/acme/login-link", headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert resp.status_code == 201
        link = resp.json()
        assert link["url"].endswith(link["path"])
        page = await client.get(link["path"])
        assert page.url.path == f"/console/t/{link['tenant_id']}"


async def test_a_tenant_sees_only_its_own_pages(console: Console) -> None:
    await console.admin("POST", "/admin/tenants", json={"name": "acme"})
    other = await console.admin("POST", "/admin/tenants", json={"name": "globex"})
    other_key = await console.admin("POST", "/admin/tenants/globex/keys", json={"name": "g-key"})
    async with console.client() as client:
        acme_id, csrf = await _tenant(console, client, "acme")
        for path in (
            f"/console/t/{other['id']}",
            f"/console/t/{other['id']}/usage",
            f"/console/t/{other['id']}/live",
            "/console/t/globex",
            "/console/fleet",
            "/console/tenants",
            "/console/revenue",
        ):
            resp = await client.get(path)
            assert resp.status_code == 403, path
            assert "globex" not in resp.text
        # Another tenant's key cannot be revoked through one's own pages either.
        resp = await client.post(
            f"/console/t/{acme_id}/keys/{other_key['id']}/revoke", data={"_csrf": csrf}
        )
        assert resp.status_code == 404
        stolen = await client.post(f"/console/t/{other['id']}/keys", data={"_csrf": csrf})
        assert stolen.status_code == 403
        keys = await console.admin("GET", "/admin/tenants/globex/keys")
        assert [k["status"] for k in keys] == ["active"]
        own = await client.get(f"/console/t/{acme_id}")
        assert own.status_code == 200 and "globex" not in own.text


async def test_tenant_creates_and_revokes_a_key_with_csrf(console: Console) -> None:
    await console.admin("POST", "/admin/tenants", json={"name": "acme"})
    async with console.client() as client:
        tenant_id, csrf = await _tenant(console, client, "acme")
        forged = await client.post(f"/console/t/{tenant_id}/keys", data={"name": "x"})
        assert forged.status_code == 403
        assert await console.admin("GET", "/admin/tenants/acme/keys") == []

        created = await client.post(
            f"/console/t/{tenant_id}/keys",
            data={"_csrf": csrf, "name": "ci", "environment": "prod"},
        )
        assert created.status_code == 200
        assert created.headers["cache-control"] == "no-store"
        shown = re.search(r'data-testid="new-key" readonly value="([^"]+)"', created.text)
        assert shown is not None
        plaintext = shown.group(1)
        models = await client.get("/v1/models", headers={"authorization": f"Bearer {plaintext}"})
        assert models.status_code == 200, models.text  # the key shown is the key that works
        (key,) = await console.admin("GET", "/admin/tenants/acme/keys")
        assert key["name"] == "ci"
        listing = await client.get(f"/console/t/{tenant_id}/live", headers={"hx-request": "true"})
        assert key["prefix"] in listing.text and plaintext not in listing.text

        forged = await client.post(f"/console/t/{tenant_id}/keys/{key['id']}/revoke", data={})
        assert forged.status_code == 403
        header = await client.post(
            f"/console/t/{tenant_id}/keys/{key['id']}/revoke", headers={"x-csrf-token": csrf}
        )
        assert header.status_code == 200  # followed the redirect back to the keys page
        (key,) = await console.admin("GET", "/admin/tenants/acme/keys")
        assert key["status"] == "revoked"


async def test_operator_suspends_restores_and_hands_out_links(console: Console) -> None:
    tenant = await console.admin("POST", "/admin/tenants", json={"name": "acme"})
    async with console.client() as client:
        csrf = await _operator(client)
        await client.post(f"/console/tenants/{tenant['id']}/suspend", data={"_csrf": csrf})
        assert (await console.admin("GET", "/admin/tenants/acme"))["status"] == "suspended"
        await client.post(f"/console/tenants/{tenant['id']}/restore", data={"_csrf": csrf})
        assert (await console.admin("GET", "/admin/tenants/acme"))["status"] == "active"
        page = await client.post(
            f"/console/tenants/{tenant['id']}/login-link", data={"_csrf": csrf}
        )
        url = re.search(r'id="login-link" readonly value="([^"]+)"', page.text)
        assert url is not None
        # operators may open any tenant's pages
        assert (await client.get(f"/console/t/{tenant['id']}/usage")).status_code == 200
        assert (await client.get("/console/t/ten_missing")).status_code == 404
        browser = console.fresh()  # the tenant, in its own browser
        opened = await browser.get(url.group(1).removeprefix("http://console.local"))
        assert opened.url.path == f"/console/t/{tenant['id']}"


async def test_operator_scales_a_pool_from_the_page(console: Console) -> None:
    await console.admin(
        "POST", "/admin/fleet/pools", json={"model": "m", "replicas": 0, "provider": "local"}
    )
    async with console.client() as client:
        csrf = await _operator(client)
        resp = await client.post(
            "/console/fleet/pools/scale", data={"_csrf": csrf, "model": "m", "replicas": "3"}
        )
        assert resp.status_code == 200
        status = await console.admin("GET", "/admin/fleet/status", params={"model": "m"})
        assert status["pools"][0]["replicas"] == 3
        bad = await client.post(
            "/console/fleet/pools/scale", data={"_csrf": csrf, "model": "m", "replicas": "many"}
        )
        assert bad.status_code == 400 and "whole number" in bad.text
