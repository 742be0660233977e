"""Requests wait for a pool's first node, within bounds, then get 503 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from fleet.clock import FakeClock, SystemClock
from fleet.errors import NoCapacity
from fleet.waiter import FirstNodeWaiter


async def test_waiters_leave_when_the_first_node_is_ready() -> None:
    ready: set[str] = set()
    asked: list[str] = []
    waiter = FirstNodeWaiter(
        timeout=10,
        poll=0.01,
        clock=SystemClock(),
        has_node=ready.__contains__,
        on_wait=asked.append,
    )
    tasks = [asyncio.create_task(waiter.wait("m")) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert waiter.waiting("m") == 3 and asked == ["m", "m", "m"]
    ready.add("other")
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in tasks)
    ready.add("m")
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert waiter.waiting("m") == 0


async def test_beyond_the_time_bound_it_is_503_with_retry_after() -> None:
    clock = FakeClock()
    waiter = FirstNodeWaiter(timeout=120, retry_after=30, clock=clock)
    with pytest.raises(NoCapacity) as info:
        await waiter.wait("m")
    assert info.value.status == 503 and info.value.headers["retry-after"] == "30"
    assert clock.monotonic() == 120
    assert waiter.waiting("m") == 0


async def test_beyond_the_queue_bound_it_is_503_at_once() -> None:
    ready: set[str] = set()
    waiter = FirstNodeWaiter(
        max_waiting=2, timeout=10, poll=0.01, clock=SystemClock(), has_node=ready.__contains__
    )
    tasks = [asyncio.create_task(waiter.wait("m")) for _ in range(2)]
    await asyncio.sleep(0.02)
    with pytest.raises(NoCapacity):
        await waiter.wait("m")
    ready.add("m")
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)


def test_only_models_someone_will_launch_for_wait() -> None:
    waiter = FirstNodeWaiter()
    assert not waiter.expects("m")
    waiter.expect({"m"})
    assert waiter.expects("m") and not waiter.expects("static-only")
