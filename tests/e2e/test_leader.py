"""Two real replicas share PostgreSQL: one leads and runs the jobs; SIGKILL it and the other
takes over within seconds, with no job run by both at once."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from fleet.db import upgrade

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_plain(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    return asyncio.run(_query(url, sql, *args))


def wait_for(check: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[object]:
    asyncio.run(upgrade(pg_url))
    query(pg_url, "DROP TABLE IF EXISTS leader_ticks")
    query(pg_url, "CREATE TABLE leader_ticks (holder text NOT NULL, at timestamptz NOT NULL)")
    query(pg_url, "DELETE FROM job_runs")
    lock_id = secrets.randbelow(2**31)
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.leader_runner", pg_url, name, str(lock_id)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    query(pg_url, "DROP TABLE IF EXISTS leader_ticks")


def test_sigkilled_leader_is_replaced_within_seconds(pg_url: str, replicas: object) -> None:
    def holders() -> list[str]:
        return [r["holder"] for r in query(pg_url, "SELECT holder FROM leader_ticks ORDER BY at")]

    a = replicas("replica-a")  # type: ignore[operator]
    wait_for(lambda: "replica-a" in holders(), 30, "replica-a to lead")
    replicas("replica-b")  # type: ignore[operator]
    time.sleep(2.0)  # both alive: only the leader may tick
    assert set(holders()) == {"replica-a"}

    killed_at = query(pg_url, "SELECT clock_timestamp() AS t")[0]["t"]
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=10)
    wait_for(lambda: "replica-b" in holders(), 15, "replica-b to take over")

    rows = query(pg_url, "SELECT holder, at FROM leader_ticks ORDER BY at")
    first_b = min(r["at"] for r in rows if r["holder"] == "replica-b")
    last_a = max(r["at"] for r in rows if r["holder"] == "replica-a")
    failover = (first_b - killed_at).total_seconds()
    assert last_a <= killed_at < first_b  # never both
    print(f"failover after SIGKILL: {failover:.2f} s")
    assert failover < 5.0, failover

    job = query(pg_url, "SELECT leader, runs FROM job_runs WHERE name = 'tick'")[0]
    lease = query(pg_url, "SELECT holder FROM leader_lease")[0]
    assert job["leader"] == "replica-b" and lease["holder"] == "replica-b"
