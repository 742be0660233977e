"""Fleet figures for ``/metrics``, computed when Prometheus scrapes rather than kept up to date
on every change: node counts by state, region and spot, the fleet's cost per hour, each pool's
target size and whether this replica leads.

Node figures come from the registry this replica already holds in memory (kept in step with
the database by its refresh), so a scrape costs no query. Pool targets live only in the
database (the leader's autoscaler writes them as ``pools.replicas``); :meth:`refresh` reads
them at most every ``pool_refresh_seconds`` and the metrics route awaits it before rendering.

Every replica reports the same fleet: dashboards aggregate these with ``max`` (never ``sum``)
across replicas. ``cic_leader`` is the exception: 1 on exactly one replica.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.registry import Registry
from fleet.tables import NodeState, Pool

BILLED_STATES = frozenset(NodeState) - {NodeState.TERMINATED}
"""States in which a node is rented, hence counted in the cost per hour."""


class FleetCollector(Collector):
    """A Prometheus collector over the node registry, the pools and the leader election."""

    def __init__(
        self,
        registry: Registry,
        sessions: async_sessionmaker[AsyncSession],
        *,
        is_leader: Callable[[], bool] = lambda: False,
        clock: Clock = SYSTEM_CLOCK,
        pool_refresh_seconds: float = 10.0,
    ) -> None:
        self._registry = registry
        self._sessions = sessions
        self.is_leader = is_leader
        self._clock = clock
        self._every = pool_refresh_seconds
        self._targets: dict[str, int] = {}
        self._read_at = float("-inf")

    def register(self, into: CollectorRegistry) -> FleetCollector:
        into.register(self)
        return self

    async def refresh(self) -> None:
        """Re-read pool targets when the last read is older than ``pool_refresh_seconds``."""
        now = self._clock.monotonic()
        if now - self._read_at < self._every:
            return
        async with self._sessions() as session:
            pools = (await session.execute(select(Pool))).scalars().all()
        self._targets = {pool.model: pool.replicas for pool in pools}
        self._read_at = now

    def describe(self) -> Iterator[Metric]:
        # Known names without computing values (prometheus_client calls this on register).
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        nodes, cost, heartbeat_age, targets, leader = self._families()
        now = self._clock.now()
        counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
        spend: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        oldest: dict[str, float] = {}
        for node in list(self._registry.nodes.values()):
            spot = "true" if node.spot else "false"
            counts[(node.model, str(node.state), node.region, spot)] += 1
            if node.state in BILLED_STATES:
                spend[(node.model, node.region, spot)] += node.price_per_hour
            if node.state is NodeState.READY and node.last_heartbeat is not None:
                age = max(0.0, now - node.last_heartbeat)
                oldest[node.model] = max(oldest.get(node.model, 0.0), age)
        for labels, n in sorted(counts.items()):
            nodes.add_metric(list(labels), n)
        for labels3, dollars in sorted(spend.items()):
            cost.add_metric(list(labels3), float(dollars))
        for model, age in sorted(oldest.items()):
            heartbeat_age.add_metric([model], age)
        for model, replicas in sorted(self._targets.items()):
            targets.add_metric([model], replicas)
        leader.add_metric([], 1.0 if self.is_leader() else 0.0)
        yield from (nodes, cost, heartbeat_age, targets, leader)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "cic_nodes",
                "GPU nodes known to the registry",
                labels=["model", "state", "region", "spot"],
            ),
            GaugeMetricFamily(
                "cic_fleet_cost_per_hour",
                "Dollars per hour of the nodes being rented (every state but terminated)",
                labels=["model", "region", "spot"],
            ),
            GaugeMetricFamily(
                "cic_node_heartbeat_age_seconds",
                "Seconds since the stalest heartbeat among a model's ready nodes",
                labels=["model"],
            ),
            GaugeMetricFamily(
                "cic_pool_target_replicas",
                "Nodes a model's pool should have (operator or autoscaler), from the pools table",
                labels=["model"],
            ),
            GaugeMetricFamily(
                "cic_leader", "1 on the replica elected to run the reconciler and jobs, else 0"
            ),
        )
