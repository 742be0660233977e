"""The reconciler: makes the nodes of each model pool match the pool's desired state.

Level-triggered: every :meth:`Reconciler.tick` compares desired state (``pools`` rows) with
observed state (the registry and each provider's ``status()``) and acts on the difference,
whatever happened before. Nothing depends on having seen an event, so a restarted control
plane resumes where it stood:

- a launch is recorded on the node row (state ``launching``, a deterministic cluster name
  derived from the node id, the hashed bootstrap token) *before* the provider is called; a
  row left in ``launching`` is re-launched under the same cluster name, which the provider
  treats as "already there", so a crash never launches twice;
- missing capacity (``replicas`` minus live nodes) is launched where the autoscaler's
  placements want it (zone, spot or on-demand; :mod:`fleet.placement`); draining nodes no
  longer count, so a spot notice gets its replacement on the very next tick (the registry
  wakes us);
- nodes whose cluster failed or vanished are terminated, terminated nodes are torn down,
  surplus nodes are drained (those no placement wants first, then not-yet-ready ones),
  clusters with our prefix that no node row knows are garbage-collected;
- progress is recorded on the row: ``phase``, ``attempts``, ``last_error``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.ids import new_id
from fleet.keys import hash_key
from fleet.logs import get_logger
from fleet.placement import Slot, drain_first, plan_launches, targets_of
from fleet.providers.base import (
    CapacityUnavailable,
    ClusterState,
    ClusterStatus,
    LaunchSpec,
    Provider,
    ProviderError,
)
from fleet.registry import LIVE_STATES, NodeView, Registry, view_of
from fleet.routing import Router
from fleet.tables import Node, NodeState, Pool

log = get_logger("cicfleet.reconciler")

MAX_ATTEMPTS = 3
"""Launch attempts of one node before it is given up (and a fresh node takes its place)."""


def cluster_name(prefix: str, node_id: str) -> str:
    """The provider-side name of a node's cluster: a function of the node id alone."""
    return f"{prefix}-{node_id.removeprefix('node_').replace('_', '-')}"


@dataclass
class Reconciler:
    sessions: async_sessionmaker[AsyncSession]
    registry: Registry
    providers: Mapping[str, Provider]
    clock: Clock = SYSTEM_CLOCK
    prefix: str = "cic"
    launch_timeout: float = 900.0
    router: Router | None = None
    on_wake: Callable[[], None] | None = None  # the leader's job scheduler runs a tick soon
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.registry.on_change(self._on_state_change)

    def _on_state_change(self, node: NodeView, old: NodeState) -> None:
        if node.provider != "static" and node.state in (NodeState.DRAINING, NodeState.TERMINATED):
            self.wake()

    def wake(self) -> None:
        """Run a tick soon (a pool changed, a node left)."""
        if self.on_wake is not None:
            self.on_wake()

    async def tick(self) -> None:
        """One level-triggered pass over every pool and every managed node."""
        async with self._lock:
            await self.registry.flush()
            await self.registry.refresh()
            await self.registry.sweep()
            async with self.sessions() as s:
                pools = {p.model: p for p in (await s.execute(select(Pool))).scalars().all()}
            observed: dict[str, ClusterStatus] = {}
            for provider in self.providers.values():
                for cluster in await provider.status():
                    observed[cluster.cluster] = cluster
            await self._observe(observed)
            for pool in pools.values():
                if self.router is not None:
                    self.router.use(pool.model, pool.routing)
                await self._converge(pool)
            for node in list(self.registry.nodes.values()):
                if node.provider != "static" and node.model not in pools:
                    await self.registry.begin_drain(node.id, reason="pool removed")
            await self._collect(observed)

    # ---- observe: provider facts into node states -----------------------------------------

    async def _observe(self, observed: Mapping[str, ClusterStatus]) -> None:
        now = self.clock.now()
        for node in list(self.registry.nodes.values()):
            if node.provider == "static" or node.cluster is None:
                continue
            seen = observed.get(node.cluster)
            if node.state is NodeState.LAUNCHING:
                if seen is None or seen.state in (ClusterState.FAILED, ClusterState.STOPPED):
                    await self._launch(node)
                elif seen.state is ClusterState.UP:
                    await self.registry.transition(node.id, NodeState.REGISTERING, phase="up")
                continue
            if node.state is NodeState.REGISTERING and now - node.created_at > self.launch_timeout:
                await self.registry.transition(
                    node.id, NodeState.TERMINATED, reason="never registered"
                )
                continue
            gone = seen is None or seen.state in (ClusterState.FAILED, ClusterState.STOPPED)
            if gone and node.state in LIVE_STATES | {NodeState.DRAINING}:
                reason = "cluster gone" if seen is None else (seen.error or str(seen.state))
                await self.registry.transition(node.id, NodeState.TERMINATED, reason=reason)

    # ---- converge: desired replicas ---------------------------------------------------------

    async def _converge(self, pool: Pool) -> None:
        nodes = [n for n in self.registry.of_model(pool.model) if n.provider != "static"]
        live = [n for n in nodes if n.state in LIVE_STATES]
        missing = pool.replicas - len(live)
        targets = targets_of(pool.placements, pool.replicas)
        if missing > 0:
            replaced = {n.replaces for n in nodes}
            noticed = [
                n
                for n in nodes
                if n.state is NodeState.DRAINING and n.notice and n.id not in replaced
            ]
            slots = plan_launches(targets, live, missing, regions=pool.regions, spot=pool.spot)
            for i, slot in enumerate(slots):
                replaces = noticed[i].id if i < len(noticed) else None
                node = await self._record_intent(pool, slot, replaces=replaces)
                await self._launch(node)
        elif missing < 0:
            unwanted = drain_first(targets, live)
            order = {NodeState.LAUNCHING: 0, NodeState.REGISTERING: 1, NodeState.UNHEALTHY: 2}
            surplus = sorted(
                live,
                key=lambda n: (n.id not in unwanted, order.get(n.state, 3), n.in_flight, n.running),
            )
            for node in surplus[:-missing]:
                await self.registry.begin_drain(node.id, reason="surplus")

    async def _record_intent(self, pool: Pool, slot: Slot, *, replaces: str | None) -> NodeView:
        """Write the launch intent (with its deterministic cluster name) before any launch, at
        the place :func:`fleet.placement.plan_launches` chose."""
        node_id = new_id("node")
        row = Node(
            id=node_id,
            model=pool.model,
            state=NodeState.LAUNCHING,
            provider=pool.provider,
            cluster=cluster_name(self.prefix, node_id),
            region=slot.region,
            zone=slot.zone,
            spot=slot.spot,
            gpu=pool.gpu,
            phase="intent",
            replaces=replaces,
            created_at=utcnow(self.clock),
            state_changed_at=utcnow(self.clock),
        )
        async with self.sessions() as s:
            s.add(row)
            await s.commit()
        node = view_of(row)
        self.registry.add(node)
        return node

    async def _launch(self, node: NodeView) -> None:
        """Call the provider for a node in ``launching``; the bootstrap token is new on every
        attempt (only its hash is stored), so a leaked token of a failed attempt is useless, and
        so is the engine key its gate will ask the gateway for."""
        provider = self.providers.get(node.provider)
        if provider is None:
            await self.registry.transition(
                node.id, NodeState.TERMINATED, reason=f"unknown provider {node.provider!r}"
            )
            return
        if node.attempts >= MAX_ATTEMPTS:
            await self.registry.transition(
                node.id, NodeState.TERMINATED, reason=f"gave up after {node.attempts} attempts"
            )
            return
        token = secrets.token_urlsafe(32)
        engine_key = secrets.token_urlsafe(32)
        attempts = node.attempts + 1
        async with self.sessions() as s:
            await s.execute(
                update(Node)
                .where(Node.id == node.id)
                .values(
                    bootstrap_hash=hash_key(token),
                    engine_key=engine_key,
                    attempts=attempts,
                    phase="launching",
                )
            )
            await s.commit()
        node.attempts, node.phase, node.engine_key = attempts, "launching", engine_key
        spec = LaunchSpec(
            node_id=node.id,
            cluster=node.cluster or cluster_name(self.prefix, node.id),
            model=node.model,
            region=node.region,
            zone=node.zone,
            spot=node.spot,
            gpu=node.gpu,
            secrets={"bootstrap_token": token, "engine_key": engine_key},
        )
        try:
            status = await provider.launch(spec)
        except ProviderError as exc:
            kind = "capacity" if isinstance(exc, CapacityUnavailable) else "failure"
            await self.registry.transition(
                node.id, NodeState.LAUNCHING, reason=f"{kind}: {exc.message}", phase="retry"
            )
            log.warning("launch failed", extra={"node": node.id, "kind": kind})
            return
        place: dict[str, object] = {}  # where the provider actually put it, and its price
        if status.region:
            place["region"] = status.region
        if status.zone:
            place["zone"] = status.zone
        if status.price_per_hour is not None:
            place["price_per_hour"] = status.price_per_hour
        if status.state is ClusterState.UP and node.state is NodeState.LAUNCHING:
            await self.registry.transition(node.id, NodeState.REGISTERING, phase="up", **place)
        elif place:
            await self.registry.transition(node.id, node.state, **place)

    # ---- collect: tear down what nobody needs -----------------------------------------------

    async def _collect(self, observed: Mapping[str, ClusterStatus]) -> None:
        clusters_by_provider = {name: p for name, p in self.providers.items()}
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(Node.cluster, Node.state, Node.provider).where(
                        Node.cluster.in_(list(observed))  # type: ignore[union-attr]
                    )
                )
            ).all()
        known = {cluster: (NodeState(state), provider) for cluster, state, provider in rows}
        for cluster in observed:
            if not cluster.startswith(f"{self.prefix}-"):
                continue
            state, provider_name = known.get(cluster, (None, None))
            if state is not None and state is not NodeState.TERMINATED:
                continue
            targets = (
                [clusters_by_provider[provider_name]]
                if provider_name in clusters_by_provider
                else list(self.providers.values())
            )
            for provider in targets:
                try:
                    await provider.terminate(cluster)
                except ProviderError as exc:
                    log.warning("teardown failed", extra={"cluster": cluster, "error": exc.message})
                    continue
            log.info(
                "cluster torn down",
                extra={"cluster": cluster, "orphan": state is None},
            )
