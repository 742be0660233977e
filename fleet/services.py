"""The running control plane's parts, built once from settings and closed in reverse order.

``api`` creates one :class:`Services` in the app's lifespan; tests build one directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fleet.catalog import CatalogService
from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.db import create_engine, session_factory, upgrade
from fleet.limits import Limiter, LimitResolver, build_limiter
from fleet.limits.service import LimitsService
from fleet.logs import get_logger
from fleet.nodes import NodeService
from fleet.settings import Settings
from fleet.tenancy import TenancyService

log = get_logger("cicfleet.services")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tenancy: TenancyService
    catalog: CatalogService
    nodes: NodeService
    limiter: Limiter
    limits: LimitsService
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack)


@asynccontextmanager
async def build_services(
    settings: Settings, *, clock: Clock = SYSTEM_CLOCK, migrate: bool | None = None
) -> AsyncIterator[Services]:
    """Open the database (migrating an embedded one unless told otherwise) and build services.

    Production databases are migrated by ``cicfleet db upgrade`` run once per deploy, never by
    each replica racing at start.
    """
    url = settings.effective_database_url
    if migrate is None:
        migrate = settings.is_embedded_database
    if migrate:
        await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    resolver = LimitResolver(
        sessions, clock=clock, refresh_seconds=settings.limits_refresh_seconds
    )
    services = Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        tenancy=TenancyService(sessions, clock=clock),
        catalog=CatalogService(sessions, clock=clock),
        nodes=NodeService(sessions, clock=clock),
        limiter=build_limiter(settings, resolver, clock=clock),
        limits=LimitsService(sessions, resolver, clock=clock),
    )
    try:
        async with services.exit_stack:
            yield services
    finally:
        await services.limiter.close()
        await engine.dispose()
