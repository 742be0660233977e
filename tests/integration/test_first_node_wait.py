"""A request for a pool that is scaling from zero waits for the first node instead of failing;
beyond the wait bound it is a 503 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from fleet.scaling import ScalingService
from tests.integration.test_proxy import MODEL, Node, error_of, plane_with, serve_node


@pytest.fixture
def database_url(tmp_path) -> str:
    """The wait does not depend on the store (the proxy tests make the same choice)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'cic.db'}"


async def scaled(services, plane) -> None:
    """Give MODEL an autoscaled pool and wait until the app's waiter has read it."""
    await ScalingService(services.sessions).set(MODEL, actor="t", max_replicas=2)
    waiter = plane.app.state.services.waiter
    for _ in range(400):
        if waiter.expects(MODEL):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the waiter never learned of the scaled pool")


async def test_request_waits_for_the_first_node(services) -> None:
    async with serve_node(Node(chunks=3)) as url, plane_with(services, []) as p:
        await scaled(services, p)
        pending = asyncio.create_task(p.chat(stream=True))
        for _ in range(100):
            if p.app.state.services.waiter.waiting(MODEL):
                break
            await asyncio.sleep(0.02)
        assert not pending.done()
        await services.nodes.add_static(MODEL, url, actor="t")  # the first node comes up
        resp = await asyncio.wait_for(pending, timeout=15)
        assert resp.status == 200 and b"t2 " in await resp.read()


async def test_beyond_the_wait_bound_it_is_503_with_retry_after(services) -> None:
    async with plane_with(services, [], queue_wait_seconds=0.2, retry_after_seconds=9) as p:
        await scaled(services, p)
        resp = await p.chat()
        assert resp.status == 503 and resp.headers["retry-after"] == "9"
        assert (await error_of(resp))["code"] == "no_capacity"
