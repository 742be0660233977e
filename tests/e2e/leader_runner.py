"""A minimal control-plane replica for the leader-election test: elect, then run one job.

Run as ``python -m tests.e2e.leader_runner DATABASE_URL NAME LOCK_ID``. Its only job inserts a
row ``(holder, at)`` into ``leader_ticks`` every 0.2 s, so the test sees who ran when.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from sqlalchemy import text

from fleet.db import create_engine, session_factory
from fleet.jobs import JobRegistry, JobScheduler
from fleet.leader import LeaderElector


async def main(url: str, name: str, lock_id: int) -> None:
    engine = create_engine(url, pool_size=2, max_overflow=2)
    sessions = session_factory(engine)

    async def tick() -> None:
        async with sessions() as session:
            await session.execute(
                text("INSERT INTO leader_ticks (holder, at) VALUES (:h, clock_timestamp())"),
                {"h": name},
            )
            await session.commit()

    registry = JobRegistry()
    registry.register("tick", tick, every=0.2)
    scheduler = JobScheduler(registry, sessions, identity=name)
    elector = LeaderElector(
        url,
        sessions,
        lock_id=lock_id,
        identity=name,
        retry=0.3,
        on_elected=scheduler.start,
        on_deposed=scheduler.stop,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await elector.start()
    print("started", flush=True)
    await stop.wait()
    await elector.stop()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
