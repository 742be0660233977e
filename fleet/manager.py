"""The fleet manager's parts wired together: registry, router, providers, pool service and
reconciler, plus the background loops that keep them moving in this process."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import Clock
from fleet.periodic import Periodic
from fleet.pools import PoolService
from fleet.providers.base import Provider
from fleet.providers.local import LocalProvider
from fleet.providers.skypilot import skypilot_provider
from fleet.reconciler import Reconciler
from fleet.registry import Registry
from fleet.routing import Router
from fleet.settings import Settings


@dataclass
class FleetManager:
    registry: Registry
    router: Router
    providers: dict[str, Provider]
    pools: PoolService
    reconciler: Reconciler
    _sweeper: Periodic | None = None

    def add_provider(self, provider: Provider) -> None:
        """Register another provider (e.g. ``skypilot``) under its ``name``."""
        self.providers[provider.name] = provider

    async def start(self) -> None:
        """Load the registry and run the heartbeat sweeper. The reconciler is not started
        here: it runs as a job of the elected leader only (fleet/leader.py)."""
        await self.registry.refresh()
        self._sweeper = Periodic(
            "registry sweep", self.registry.flush_and_sweep, seconds=self.registry.sweep_period
        )
        self._sweeper.start(at_once=True)

    async def close(self) -> None:
        if self._sweeper is not None:
            await self._sweeper.close()
            self._sweeper = None
        with contextlib.suppress(Exception):
            await self.registry.flush()


def build_fleet(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> FleetManager:
    registry = Registry(
        sessions,
        clock=clock,
        heartbeat_interval=settings.heartbeat_interval,
        unhealthy_after=settings.unhealthy_after_beats,
        terminate_after=settings.terminate_after_beats,
        drain_timeout=settings.drain_timeout,
    )
    router = Router(
        registry,
        clock=clock,
        eject_after=settings.eject_after_failures,
        eject_seconds=settings.eject_seconds,
    )
    providers: dict[str, Provider] = {
        "local": LocalProvider(
            settings.home,
            control_url=settings.effective_url,
            prefix=settings.cluster_prefix,
            engine_command=settings.local_engine_command,
        )
    }
    skypilot = skypilot_provider(settings)
    if skypilot is not None:
        providers[skypilot.name] = skypilot
    reconciler = Reconciler(
        sessions,
        registry,
        providers,
        clock=clock,
        prefix=settings.cluster_prefix,
        launch_timeout=settings.launch_timeout,
        router=router,
    )
    pools = PoolService(
        sessions, registry, router, providers=providers, wake=reconciler.wake, clock=clock
    )
    return FleetManager(registry, router, providers, pools, reconciler)
