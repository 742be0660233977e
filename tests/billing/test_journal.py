"""The usage journal: durable on ``record``, shipped once, replayed after a crash."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from fleet.billing.journal import UsageJournal, read_segment
from fleet.billing.ledger import UsageShipper
from fleet.billing.pricing import Pricer
from fleet.tables import Node
from tests.billing.support import count, event, rows


def journal(services, root: Path, **kw) -> UsageJournal:
    shipper = UsageShipper(services.engine, Pricer(services.sessions))
    return UsageJournal(root, shipper, **kw)


async def _prices(services) -> None:
    await services.catalog.create_model("m", input_per_1m=Decimal("0.10"), actor="t")
    await services.catalog.set_price(
        "m",
        input_per_1m=Decimal("0.50"),
        output_per_1m=Decimal("1.50"),
        region="eu",
        effective_from=datetime(2027, 1, 1, tzinfo=UTC),
        actor="t",
    )
    async with services.sessions() as s:
        s.add(Node(id="node_1", model="m", price_per_hour=Decimal("3.60")))
        await s.commit()


async def test_recorded_usage_is_on_disk_before_record_returns(services, tmp_path) -> None:
    j = journal(services, tmp_path / "j", rotate_seconds=60)
    await j.start()
    try:
        await asyncio.gather(*(j.record(event(n)) for n in range(50)))
        segments = sorted(j.directory.glob("*.log"))
        on_disk = [e for seg in segments for e in read_segment(seg)]
        assert sorted(e.request_id for e in on_disk) == sorted(f"req-{n}" for n in range(50))
        assert await count(services.sessions) == 0  # the database is written off the path
        await j.flush()
        assert await count(services.sessions) == 50
        assert not list(j.directory.glob("*.log"))  # shipped segments are deleted
    finally:
        await j.close()


async def test_rows_are_priced_by_region_and_time_with_gpu_cost(services, tmp_path) -> None:
    await _prices(services)
    j = journal(services, tmp_path / "j")
    await j.start()
    await j.record(event(1, prompt_tokens=1000, completion_tokens=2000, region="eu"))
    await j.record(event(2, prompt_tokens=1000, completion_tokens=2000, region="us"))
    await j.record(
        event(3, prompt_tokens=1000, region="eu", created_at=1_797_000_000.0, node_concurrency=4)
    )
    await j.close()
    got = await rows(services.sessions)
    # eu price from 2027-01-01: 1000 x 0.50/1M + 2000 x 1.50/1M
    assert got["req-1"].cost == Decimal("0.0035")
    # no eu price for us: the '*' price 0.10 in, 0 out
    assert got["req-2"].cost == Decimal("0.0001")
    # served before the eu price existed: the '*' price in force then
    assert got["req-3"].cost == Decimal("0.0001")
    # 2 s on a $3.60/h node: $0.002; shared by 4 concurrent requests: $0.0005
    assert got["req-1"].gpu_cost == Decimal("0.002")
    assert got["req-3"].gpu_cost == Decimal("0.0005")


async def test_a_dead_process_segments_are_replayed_once(services, tmp_path) -> None:
    root = tmp_path / "j"
    dead = journal(services, root, rotate_seconds=60)
    await dead.start()
    for n in range(30):
        await dead.record(event(n))
    # The process dies: its tasks stop, its lock goes with it; nothing was shipped.
    for task in (dead._shipping, dead._writer):
        task.cancel()
    os.close(dead._lock_fd)
    assert await count(services.sessions) == 0

    live = journal(services, root)
    await live.start()
    await live.flush()
    assert await count(services.sessions) == 30
    # A segment shipped but not deleted before a crash is replayed without duplicates.
    seg = live.directory / "000000099999.log"
    seg.write_bytes(b"".join(msgspec.json.encode(event(n)) + b"\n" for n in range(5)))
    live._sealed.append(seg)
    await live.flush()
    await live.close()
    assert await count(services.sessions) == 30
    assert not any(root.iterdir())  # a clean stop leaves nothing behind


async def test_a_live_replica_directory_is_left_alone(services, tmp_path) -> None:
    root = tmp_path / "j"
    a = journal(services, root, rotate_seconds=60)
    await a.start()
    await a.record(event(1))
    b = journal(services, root)
    await b.start()
    await b.flush()
    assert await count(services.sessions) == 0  # b did not take a's unshipped segment
    await a.close()
    await b.close()
    assert await count(services.sessions) == 1


async def test_torn_last_line_is_skipped(tmp_path) -> None:
    seg = tmp_path / "1.log"
    seg.write_bytes(msgspec.json.encode(event(1)) + b"\n" + msgspec.json.encode(event(2))[:20])
    assert [e.request_id for e in read_segment(seg)] == ["req-1"]


async def test_database_down_keeps_segments_until_it_returns(services, tmp_path) -> None:
    class Down(UsageShipper):
        fail = True

        async def ship(self, events):
            if self.fail:
                raise ConnectionError("database unreachable")
            await super().ship(events)

    shipper = Down(services.engine, Pricer(services.sessions))
    j = UsageJournal(tmp_path / "j", shipper, rotate_seconds=0.05)
    await j.start()
    await j.record(event(1))
    await asyncio.sleep(0.2)
    assert list(j.directory.glob("*.log")) and await count(services.sessions) == 0
    shipper.fail = False
    await j.flush()
    assert await count(services.sessions) == 1
    await j.close()


async def test_a_client_leaving_does_not_cancel_others_sync(services, tmp_path) -> None:
    j = journal(services, tmp_path / "j")
    await j.start()
    leaving = asyncio.create_task(j.record(event(1)))
    staying = asyncio.create_task(j.record(event(2)))
    await asyncio.sleep(0)
    leaving.cancel()
    await staying
    await j.close()
    assert "req-2" in await rows(services.sessions)
