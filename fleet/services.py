"""The running control plane's parts, built once from settings and closed in reverse order.

``api`` creates one :class:`Services` in the app's lifespan; tests build one directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fleet.auth import KeyAuth, invalidation_channel
from fleet.billing.service import Billing, build_billing
from fleet.catalog import CatalogService
from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.db import create_engine, session_factory, upgrade
from fleet.jobs import JobRegistry
from fleet.limits import Limiter, LimitResolver, build_limiter
from fleet.limits.service import LimitsService
from fleet.logs import get_logger
from fleet.manager import FleetManager, build_fleet
from fleet.metrics import GatewayMetrics
from fleet.nodes import NodeService
from fleet.periodic import Periodic
from fleet.pool import NodePool
from fleet.request_rates import RequestRates
from fleet.scaling import ScalingService
from fleet.settings import Settings
from fleet.tenancy import TenancyService
from fleet.usage import UsageSink
from fleet.waiter import FirstNodeWaiter

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
    auth: KeyAuth
    pool: NodePool
    usage: UsageSink
    metrics: GatewayMetrics
    waiter: FirstNodeWaiter = field(default_factory=FirstNodeWaiter)
    jobs: JobRegistry = field(default_factory=JobRegistry)  # run by the leader (serve only)
    redis: Any | None = None  # redis.asyncio.Redis when CIC_REDIS_URL is set
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    fleet: FleetManager | None = None
    rates: RequestRates | None = None  # cluster-wide requests/s per model (autoscaler)
    billing: Billing | None = None


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
    resolver = LimitResolver(sessions, clock=clock, refresh_seconds=settings.limits_refresh_seconds)
    metrics = GatewayMetrics()
    redis = None
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
    tenancy = TenancyService(sessions, clock=clock)
    nodes = NodeService(sessions, clock=clock)
    fleet = build_fleet(settings, sessions, clock)
    pool = NodePool(fleet.registry, fleet.router, region=settings.region)
    nodes.changed.connect(pool.refresh_soon)
    billing = build_billing(settings, engine, sessions, tenancy, metrics, clock=clock)
    usage = billing.journal  # durable before the final chunk; shipped in batches
    services = Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        tenancy=tenancy,
        catalog=CatalogService(sessions, clock=clock),
        nodes=nodes,
        limiter=build_limiter(settings, resolver, clock=clock, registry=metrics.registry),
        limits=LimitsService(sessions, resolver, clock=clock),
        auth=KeyAuth(
            tenancy,
            clock=clock,
            ttl_seconds=settings.key_cache_seconds,
            redis=redis,
            channel=invalidation_channel(settings.redis_prefix),
        ),
        pool=pool,
        usage=usage,
        metrics=metrics,
        redis=redis,
        waiter=FirstNodeWaiter(
            max_waiting=settings.queue_wait_max,
            timeout=settings.queue_wait_seconds,
            retry_after=settings.retry_after_seconds,
            clock=clock,
            has_node=lambda model: bool(pool.nodes(model)),
        ),
    )
    services.fleet = fleet
    services.rates = RequestRates(metrics, clock, redis=redis, prefix=settings.redis_prefix)
    rate_reports = Periodic("request rate reports", services.rates.publish, seconds=5.0)
    services.billing = billing
    billing.register_jobs(services.jobs)
    services.exit_stack.push_async_callback(fleet.close)
    try:
        async with services.exit_stack as stack:
            if redis is not None:
                stack.push_async_callback(redis.aclose)
            await pool.start()
            stack.push_async_callback(pool.close)
            await usage.start()
            stack.push_async_callback(usage.close)
            rate_reports.start()
            stack.push_async_callback(rate_reports.close, final_call=True)
            await services.auth.start()
            stack.push_async_callback(services.auth.close)
            # Every replica's first-node waiter follows scaling changes made on any replica.
            scaling = ScalingService(sessions)
            watch = Periodic(
                "pool scaling watch", partial(scaling.tell_waiter, services.waiter), seconds=2.0
            )
            watch.start(at_once=True)
            stack.push_async_callback(watch.close)
            yield services
    finally:
        await services.limiter.close()
        await engine.dispose()
