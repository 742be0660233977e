"""SIGTERM handling of a serving replica (api/shutdown.py): leadership goes at once, the
server is told to stop accepting, open requests are ended only when the grace runs out."""

from __future__ import annotations

import asyncio
import signal

import pytest

from api import shutdown as shutdown_module
from api.shutdown import GracefulShutdown


class Recorder:
    def __init__(self) -> None:
        self.stepped_down = 0
        self.cut_at: float | None = None
        self.open = 2

    async def step_down(self) -> None:
        self.stepped_down += 1

    def cut(self) -> int:
        self.cut_at = asyncio.get_running_loop().time()
        n, self.open = self.open, 0
        return n


@pytest.fixture
def signals_sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(shutdown_module.os, "kill", lambda pid, sig: sent.append(sig))
    return sent


async def test_sigterm_steps_down_at_once_and_cuts_only_after_the_grace(
    signals_sent: list[int],
) -> None:
    rec = Recorder()
    gs = GracefulShutdown(
        grace_seconds=0.2, step_down=rec.step_down, in_flight=lambda: rec.open, cut=rec.cut
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    gs.begin()
    assert signals_sent == [signal.SIGINT]  # the server stops accepting
    await asyncio.sleep(0.05)
    assert rec.stepped_down == 1
    assert rec.cut_at is None  # open requests keep running during the grace
    await asyncio.sleep(0.3)
    assert rec.cut_at is not None and rec.cut_at - began >= 0.2
    gs.begin()  # a second SIGTERM changes nothing
    assert rec.stepped_down == 1 and signals_sent == [signal.SIGINT]
    await gs.close()


async def test_requests_done_within_the_grace_are_never_cut(signals_sent: list[int]) -> None:
    rec = Recorder()
    gs = GracefulShutdown(
        grace_seconds=0.1, step_down=rec.step_down, in_flight=lambda: rec.open, cut=rec.cut
    )
    gs.begin()
    await asyncio.sleep(0.01)
    await gs.close()  # the server finished serving: the lifespan ends before the grace
    await asyncio.sleep(0.15)
    assert rec.cut_at is None


async def test_a_failing_step_down_does_not_stop_the_shutdown(signals_sent: list[int]) -> None:
    async def broken() -> None:
        raise ConnectionError("database gone")

    gs = GracefulShutdown(grace_seconds=1, step_down=broken, in_flight=lambda: 0, cut=lambda: 0)
    gs.begin()
    await gs.close()
    assert signals_sent == [signal.SIGINT]
