"""Scheduled jobs of the control plane, run by the elected leader only.

Jobs are plain async callables registered by name with an interval, so other parts of the
fleet (stale-node sweep, drain completion, autoscaler and reconciler ticks, billing export)
plug in without knowing about the scheduler. APScheduler 3.11's ``AsyncIOScheduler`` runs
them with the default in-memory job store: jobs live in code, never in a shared store (which
runs them once per replica). Each run is recorded in ``job_runs`` for ``cicfleet status
--jobs``: who ran it, when, how long, and the last error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.logs import get_logger
from fleet.tables import JobRun

log = get_logger("cicfleet.jobs")

JobFn = Callable[[], Awaitable[Any]]
STOP_GRACE_SECONDS = 10.0  # how long a stopping scheduler lets running jobs finish


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    fn: JobFn
    every: float  # seconds between starts


class JobRegistry:
    """The jobs a leader runs; names are unique and shown to operators."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def register(self, name: str, fn: JobFn, *, every: float) -> None:
        if name in self._jobs:
            raise ValueError(f"job {name!r} registered twice")
        if every <= 0:
            raise ValueError("a job interval must be positive")
        self._jobs[name] = Job(name=name, fn=fn, every=every)

    def __iter__(self) -> Any:
        return iter(self._jobs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def names(self) -> list[str]:
        return sorted(self._jobs)


class JobScheduler:
    """Starts the registry's jobs when this replica is elected and stops them when deposed;
    hand :meth:`start` and :meth:`stop` to :class:`fleet.leader.LeaderElector`."""

    def __init__(
        self,
        registry: JobRegistry,
        sessions: async_sessionmaker[AsyncSession],
        *,
        identity: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._registry = registry
        self._sessions = sessions
        self._identity = identity
        self._clock = clock
        self._scheduler: Any = None
        self._running: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def start(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        if self._scheduler is not None:
            return
        scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        for job in self._registry:
            scheduler.add_job(
                self.run_once,
                "interval",
                seconds=job.every,
                args=[job],
                id=job.name,
                name=job.name,
                next_run_time=datetime.now().astimezone(),
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started", extra={"jobs": self._registry.names()})

    def run_soon(self, name: str) -> None:
        """Run job ``name`` now instead of at its next interval (when this replica leads)."""
        if self._scheduler is not None and self._scheduler.get_job(name) is not None:
            self._scheduler.modify_job(name, next_run_time=datetime.now().astimezone())

    async def stop(self) -> None:
        """Start no more runs, let the running ones end (at most ``STOP_GRACE_SECONDS``),
        then shut the scheduler down.

        APScheduler's shutdown cancels running jobs; a job cancelled inside a database call
        leaves its connection to be terminated after the engine is gone (seen with aiosqlite:
        a close that never returns, hanging the event loop's shutdown)."""
        if self._scheduler is not None:
            scheduler, self._scheduler = self._scheduler, None
            scheduler.pause()
            running = self._running - {asyncio.current_task()}
            if running:
                await asyncio.wait(running, timeout=STOP_GRACE_SECONDS)
            scheduler.shutdown(wait=False)
            log.info("scheduler stopped")

    async def run_once(self, job: Job) -> None:
        """Run one job and record the outcome; a failing job is logged, never fatal."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        started = utcnow(self._clock)
        t0 = time.perf_counter()
        error: str | None = None
        try:
            await job.fn()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1024]
            log.warning("job failed", extra={"job": job.name, "error": error})
        await self._record(job.name, started, (time.perf_counter() - t0) * 1000, error)

    async def _record(
        self, name: str, started: datetime, duration_ms: float, error: str | None
    ) -> None:
        async with self._sessions() as session:
            row = await session.get(JobRun, name) or JobRun(name=name)
            row.leader = self._identity
            row.runs += 1
            row.failures += error is not None
            row.last_started_at = started
            row.last_finished_at = utcnow(self._clock)
            row.last_ok = error is None
            row.last_error = error
            row.last_duration_ms = round(duration_ms, 3)
            session.add(row)
            await session.commit()


async def job_report(sessions: async_sessionmaker[AsyncSession]) -> list[JobRun]:
    """Every job's last run, by name."""
    async with sessions() as session:
        rows = await session.execute(select(JobRun).order_by(JobRun.name))
        return list(rows.scalars())
