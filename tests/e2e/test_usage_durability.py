"""SIGKILL a control plane under streaming load, restart it: the database then holds exactly
the usage every client received, token for token, and nothing twice (real processes,
PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import MODEL, start_control_plane, start_simulator, stop

pytestmark = pytest.mark.postgres
ADMIN = "admin-token-for-durability-test"


async def _seed(env: dict[str, str], node_url: str) -> tuple[str, str]:
    from fleet import build_services, load_settings

    settings = load_settings(home=env["CIC_HOME"], database_url=env["CIC_DATABASE_URL"])
    async with build_services(settings, migrate=True) as svc:
        if MODEL not in await svc.catalog.models():
            await svc.catalog.create_model(MODEL, context_length=4096, actor="test")
        name = f"durable-{uuid.uuid4().hex[:8]}"
        tenant = await svc.tenancy.create_tenant(name, plan="pro", actor="test")
        _, key = await svc.tenancy.create_key(name, actor="test")
        await svc.nodes.add_static(MODEL, node_url, actor="test")
    return tenant.id, key


async def _client(
    base: str, key: str, stop_at: float, received: dict[str, tuple[int, int]], sent: set[str]
) -> None:
    """Stream requests until the server dies; ``received`` gets the usage of each stream
    the client got completely (its usage chunk and ``[DONE]``)."""
    async with httpx.AsyncClient(timeout=10) as http:
        n = 0
        while time.monotonic() < stop_at:
            rid = uuid.uuid4().hex
            n += 1
            sent.add(rid)
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": "count"}],
                "stream": True,
                "max_tokens": 1 + n % 17,
                "stream_options": {"include_usage": True},
            }
            usage = None
            done = False
            try:
                async with http.stream(
                    "POST",
                    f"{base}/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                ) as resp:
                    if resp.status_code != 200:
                        continue
                    async for line in resp.aiter_lines():
                        if line == "data: [DONE]":
                            done = True
                        elif line.startswith("data: ") and '"usage"' in line:
                            u = json.loads(line[6:]).get("usage")
                            if u:
                                usage = (u["prompt_tokens"], u["completion_tokens"])
            except httpx.HTTPError:
                return  # the server was killed
            if done and usage is not None:
                received[rid] = usage


async def _load(base: str, key: str, seconds: float, kill) -> tuple[dict, set]:
    received: dict[str, tuple[int, int]] = {}
    sent: set[str] = set()
    stop_at = time.monotonic() + seconds + 30
    clients = [asyncio.create_task(_client(base, key, stop_at, received, sent)) for _ in range(24)]
    await asyncio.sleep(seconds)
    kill()
    await asyncio.wait_for(asyncio.gather(*clients), 30)
    return received, sent


async def _stored(dsn: str, tenant_id: str) -> dict[str, tuple[int, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT request_id, prompt_tokens, completion_tokens FROM usage_records "
            "WHERE tenant_id = $1",
            tenant_id,
        )
    finally:
        await conn.close()
    return {r["request_id"]: (r["prompt_tokens"], r["completion_tokens"]) for r in rows}


def test_sigkill_under_load_loses_no_delivered_usage(pg_url: str, tmp_path: Path) -> None:
    sim = start_simulator(free_port(), ttft_ms=2, itl_ms=2)
    node_url = f"http://127.0.0.1:{sim.args[4]}"
    journal = tmp_path / "journal"
    env = {
        "CIC_DATABASE_URL": pg_url,
        "CIC_ADMIN_TOKEN": ADMIN,
        "CIC_USAGE_JOURNAL_DIR": str(journal),
        # Ship rarely, so the kill finds plenty of usage only in the journal.
        "CIC_USAGE_FLUSH_SECONDS": "30",
        "CIC_USAGE_BATCH_SIZE": "1000000",
        "CIC_LOG_LEVEL": "WARNING",
        "CIC_RECONCILE": "false",
    }
    try:
        tenant_id, key = asyncio.run(_seed({"CIC_HOME": str(tmp_path / "home"), **env}, node_url))
        cp = start_control_plane(tmp_path, extra_env=env)

        def kill() -> None:
            os.killpg(cp.proc.pid, signal.SIGKILL)

        try:
            received, sent = asyncio.run(_load(cp.url, key, 3.0, kill))
            cp.proc.wait(10)
        finally:
            stop(cp.proc)
        assert len(received) > 100, "the load did not get going"
        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
        assert not set(asyncio.run(_stored(dsn, tenant_id))) >= set(received), (
            "everything was already shipped: the kill proved nothing"
        )
        restarted = start_control_plane(tmp_path, extra_env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stored = asyncio.run(_stored(dsn, tenant_id))
                if set(stored) >= set(received):
                    break
                time.sleep(0.3)
        finally:
            stop(restarted.proc)
        stored = asyncio.run(_stored(dsn, tenant_id))
        missing = set(received) - set(stored)
        assert not missing, f"{len(missing)} delivered requests were not billed"
        assert {rid: stored[rid] for rid in received} == received  # token for token
        assert set(stored) <= sent  # nothing invented, request ids unique (no duplicates)
        assert not any(journal.glob("*/*.log"))  # everything shipped and deleted
    finally:
        stop(sim)
