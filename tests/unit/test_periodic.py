"""A replica-local periodic task survives failures, runs at once when woken, and can write what
is left when stopped."""

from __future__ import annotations

import asyncio

import pytest

from fleet.periodic import Periodic


async def test_failures_do_not_stop_the_loop_and_wake_runs_at_once() -> None:
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("database away")

    task = Periodic("flaky", flaky, seconds=3600)
    task.start()
    for expected in (1, 2):
        task.wake()
        for _ in range(100):
            if len(calls) >= expected:
                break
            await asyncio.sleep(0.01)
        assert len(calls) == expected  # the hour-long interval was cut short by wake()
    await task.close(final_call=True)
    assert len(calls) == 3


def test_period_must_be_positive() -> None:
    async def noop() -> None:
        return None

    with pytest.raises(ValueError):
        Periodic("bad", noop, seconds=0)


async def test_close_lets_the_current_call_finish() -> None:
    """A call in progress (a database write, say) is never cut off by close."""
    started, finished = asyncio.Event(), []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.append(True)

    task = Periodic("slow", slow, seconds=3600)
    task.start(at_once=True)
    await started.wait()
    await task.close()
    assert finished == [True]
