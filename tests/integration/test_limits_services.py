"""``build_services`` picks the shared Redis limiter when ``CIC_REDIS_URL`` is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet import FakeClock, build_services, load_settings
from fleet.limits.failover import FailoverCounterStore
from fleet.limits.memory import MemoryCounterStore

pytestmark = pytest.mark.redis


async def test_redis_url_selects_the_shared_store(
    tmp_path: Path, cic_home: Path, redis_url: str, redis_prefix: str
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cic.db'}"
    settings = load_settings(database_url=db, redis_url=redis_url, redis_prefix=redis_prefix)
    async with build_services(settings, clock=FakeClock(), migrate=True) as svc:
        assert isinstance(svc.limiter.store, FailoverCounterStore)
    async with build_services(load_settings(database_url=db), migrate=True) as svc:
        assert isinstance(svc.limiter.store, MemoryCounterStore)
