"""Leader election among control-plane replicas: exactly one runs the reconciler and jobs.

With PostgreSQL the leader holds a session-level advisory lock on a *dedicated* connection
(never a pooled one: a pool would hand the session, and with it the lock, to someone else).
Followers try ``pg_try_advisory_lock`` every ``retry`` seconds. When the leader dies, its
session ends (kernel closes the socket on SIGKILL; TCP keepalives catch a lost host), the lock
is released, and a follower takes over on its next try: failover takes about ``retry``
seconds. The leader pings its connection every ``retry`` seconds and steps down the moment it
fails, before anyone else can have the lock long. Measured on this machine: 0 duplicate runs,
failover ~1 s (docs/leader.md).

With the embedded SQLite store there is one process, and it is the leader.

A shared APScheduler job store was measured running jobs 34 times for 12 ticks across 3
replicas; hence in-code jobs in the leader only (:mod:`fleet.jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.logs import get_logger
from fleet.tables import LeaderLease

if TYPE_CHECKING:
    from fleet.services import Services

log = get_logger("cicfleet.leader")

Hook = Callable[[], Awaitable[None]]


def default_identity() -> str:
    """How a replica names itself in the lease row and logs: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderElector:
    """Runs ``on_elected`` when this replica becomes leader and ``on_deposed`` when it stops
    being one (connection lost, or shutdown). ``is_leader`` fences work done by the leader."""

    def __init__(
        self,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        *,
        lock_id: int,
        identity: str | None = None,
        retry: float = 1.0,
        on_elected: Hook | None = None,
        on_deposed: Hook | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._url = database_url
        self._sessions = sessions
        self._lock_id = lock_id
        self.identity = identity or default_identity()
        self._retry = retry
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._clock = clock
        self._leader = False
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def embedded(self) -> bool:
        return self._url.startswith("sqlite")

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Step down (releasing the lock by closing the session) and stop campaigning."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._step_down("shutdown")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._leader:
                    if await self._try_acquire():
                        await self._elected()
                elif not await self._still_holding():
                    await self._step_down("lost the database session")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("leader election error", extra={"error": str(exc)[:300]})
                await self._step_down("election error")
            await self._clock.sleep(self._retry)

    async def _try_acquire(self) -> bool:
        if self.embedded:
            return True
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            url = self._url.replace("postgresql+asyncpg://", "postgresql://")
            self._conn = await asyncpg.connect(
                url,
                timeout=5,
                server_settings={
                    "application_name": f"cicfleet-leader {self.identity}"[:63],
                    "tcp_keepalives_idle": "5",
                    "tcp_keepalives_interval": "2",
                    "tcp_keepalives_count": "3",
                },
            )
        got = await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_id)
        return bool(got)

    async def _still_holding(self) -> bool:
        if self.embedded:
            return True
        try:
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout=self._retry * 2)
            return True
        except Exception:
            return False

    async def _elected(self) -> None:
        self._leader = True
        log.info("elected leader", extra={"identity": self.identity})
        await self._write_lease()
        if self._on_elected is not None:
            await self._on_elected()

    async def _step_down(self, why: str) -> None:
        was_leader, self._leader = self._leader, False
        if was_leader and self._on_deposed is not None:
            try:
                await self._on_deposed()
            except Exception as exc:
                log.warning("error while stepping down", extra={"error": str(exc)[:300]})
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            if not conn.is_closed():
                conn.terminate()
        if was_leader:
            log.info("stepped down", extra={"identity": self.identity, "why": why})

    async def _write_lease(self) -> None:
        now = utcnow(self._clock)
        async with self._sessions() as session:
            await session.execute(delete(LeaderLease))
            session.add(LeaderLease(id=1, holder=self.identity, acquired_at=now, renewed_at=now))
            await session.commit()


async def current_leader(sessions: async_sessionmaker[AsyncSession]) -> LeaderLease | None:
    """The lease row of the last elected leader (for ``cicfleet status --jobs``)."""
    async with sessions() as session:
        return await session.get(LeaderLease, 1)


@asynccontextmanager
async def leadership(services: Services) -> AsyncIterator[LeaderElector]:
    """Campaign for leadership while the block runs; the leader runs ``services.jobs``.

    Opened by ``cicfleet serve`` (the app lifespan) only: CLI commands and tests that build
    services do not campaign.
    """
    from fleet.jobs import JobScheduler

    identity = default_identity()
    scheduler = JobScheduler(services.jobs, services.sessions, identity=identity)
    fleet = services.fleet
    if fleet is not None and services.settings.reconcile and "reconciler" not in services.jobs:
        # The reconciler tick also sweeps stale nodes and completes drains: leader only, and
        # run at once when something changed (a pool scaled, a spot notice, a node left).
        services.jobs.register(
            "reconciler", fleet.reconciler.tick, every=services.settings.reconcile_interval
        )
        fleet.reconciler.on_wake = lambda: scheduler.run_soon("reconciler")
    if fleet is not None and "autoscaler" not in services.jobs:
        from fleet.autoscaling_job import fleet_autoscaling

        services.jobs.register("autoscaler", fleet_autoscaling(services).tick, every=10.0)
    elector = LeaderElector(
        services.settings.effective_database_url,
        services.sessions,
        lock_id=services.settings.leader_lock_id,
        identity=identity,
        retry=services.settings.leader_retry_seconds,
        on_elected=scheduler.start,
        on_deposed=scheduler.stop,
        clock=services.clock,
    )
    await elector.start()
    try:
        yield elector
    finally:
        await elector.stop()
