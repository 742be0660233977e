"""Shared fixtures.

PostgreSQL and Redis tests use this machine's real servers. They run whenever the servers
answer; under ``CI=true`` a missing server is a failure, never a skip. Each test session gets
its own PostgreSQL database and Redis key prefix, so parallel runs never see each other.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.processes import free_port  # noqa: F401  (tests import it from here)

PG_ADMIN_URL = os.environ.get("CIC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CIC_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HOW_TO = (
    "start them with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start; "
    'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _require(service: str, host: str, port: int) -> None:
    if _answers(host, port):
        return
    msg = f"{service} is not reachable on {host}:{port}; {HOW_TO}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (asyncpg URL) for this test session, dropped afterwards."""
    _require("PostgreSQL", "127.0.0.1", 5432)
    import asyncpg

    name = f"cic_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = PG_ADMIN_URL

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url() -> str:
    _require("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test or run shares."""
    return f"cictest:{secrets.token_hex(4)}"


@pytest.fixture
def cic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated CIC_HOME; clears CIC_* variables leaking from the caller's shell."""
    for name in list(os.environ):
        if name.startswith("CIC_") and not name.startswith("CIC_TEST_"):
            monkeypatch.delenv(name)
    home = tmp_path / "cic"
    monkeypatch.setenv("CIC_HOME", str(home))
    return home


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on SQLite and once on this machine's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'cic.db'}"
        return
    url = request.getfixturevalue("pg_url")
    yield url
    # Tests share the session database; empty it so each starts clean.
    import asyncpg

    async def truncate() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename <> 'alembic_version'"
            )
            if tables:
                names = ", ".join(f'"{t["tablename"]}"' for t in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())


@pytest.fixture
async def services(database_url: str, cic_home: Path) -> AsyncIterator[object]:
    """Control-plane services over a migrated database of each kind."""
    from fleet import build_services, load_settings

    settings = load_settings(database_url=database_url)
    async with build_services(settings, migrate=True) as svc:
        yield svc
