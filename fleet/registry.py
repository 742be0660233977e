"""The node registry: which nodes exist, in which state, and how loaded each one is.

State lives in the database (``nodes.state``) so control-plane replicas agree; every state
change goes through :meth:`Registry.transition`, which checks :data:`TRANSITIONS` (the one
table of legal moves) and writes the row with a compare-and-set on the old state. Load figures
arrive with heartbeats many times a second across a fleet, so they stay in memory
(:class:`NodeView`) and reach the database in batches (:meth:`Registry.flush`); a heartbeat
that changes nothing about the state costs a dict lookup, a hash and a few attribute writes.

Lifecycle::

    launching → registering → ready ⇄ unhealthy
         │            │          │        │
         └────────────┴──────────┴── draining → terminated   (any live state → terminated)

No heartbeat for ``unhealthy_after`` intervals → unhealthy (out of routing); for
``terminate_after`` intervals → terminated, which the reconciler tears down and replaces.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import SYSTEM_CLOCK, Clock, utcnow
from fleet.errors import AuthenticationFailed, IllegalTransition, NotFound
from fleet.keys import hash_key
from fleet.logs import get_logger
from fleet.tables import Node, NodeState

log = get_logger("cicfleet.registry")

S = NodeState
TRANSITIONS: Mapping[NodeState, frozenset[NodeState]] = {
    S.LAUNCHING: frozenset({S.REGISTERING, S.TERMINATED}),
    S.REGISTERING: frozenset({S.READY, S.UNHEALTHY, S.TERMINATED}),
    S.READY: frozenset({S.UNHEALTHY, S.DRAINING, S.TERMINATED}),
    S.UNHEALTHY: frozenset({S.READY, S.DRAINING, S.TERMINATED}),
    S.DRAINING: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset(),
}
"""Every legal state change; anything else raises :class:`IllegalTransition`."""

LIVE_STATES = frozenset({S.LAUNCHING, S.REGISTERING, S.READY, S.UNHEALTHY})
"""States that count as capacity (present or coming) for the reconciler."""


def check_transition(old: NodeState, new: NodeState) -> None:
    """Raise unless ``old → new`` is in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"node cannot go from {old} to {new}")


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


_NODES = Node.__table__  # type: ignore[attr-defined]

_VIEW_NAMES = {"last_heartbeat_at": "last_heartbeat"}

REFRESH_SLACK = 5.0
"""Seconds of overlap between incremental refreshes: covers clock skew between replicas and
transactions that committed a change stamped just before the previous read."""

_DB_OWNED = (
    "state",
    "url",
    "engine_key",
    "cluster",
    "region",
    "zone",
    "spot",
    "gpu",
    "phase",
    "price_per_hour",
    "token_hash",
    "drain_deadline",
    "state_changed_at",
    "attempts",
    "last_error",
    "replaces",
)
"""Node fields the database is the authority on; the rest are this process's own."""


@dataclass(slots=True, eq=False)
class NodeView:
    """What the control plane keeps in memory about one node; routing reads only this."""

    id: str
    model: str
    state: NodeState
    url: str | None = None
    provider: str = "static"
    cluster: str | None = None
    region: str = "local"
    zone: str | None = None
    spot: bool = False
    gpu: str | None = None
    price_per_hour: Decimal = Decimal(0)
    agent_version: str | None = None
    created_at: float = 0.0
    state_changed_at: float = 0.0
    last_heartbeat: float | None = None
    drain_deadline: float | None = None
    token_hash: str | None = None
    engine_key: str | None = field(default=None, repr=False)  # sent to the node's gate
    phase: str | None = None
    attempts: int = 0
    last_error: str | None = None
    replaces: str | None = None
    # Load: engine figures from the last heartbeat, and this process's own in-flight count.
    healthy: bool = True
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0
    weight: float = 1.0
    in_flight: int = 0
    # Outlier ejection (managed by the router; monotonic seconds).
    failures: int = 0
    ejected_until: float = 0.0
    notice: str | None = None

    @property
    def routable(self) -> bool:
        """Ready, has an address and reports a healthy engine (ejection is checked apart)."""
        return self.state is S.READY and self.url is not None and self.healthy

    def as_dict(self, now: float, mono: float) -> dict[str, object]:
        """The operator's view of the node (``cicfleet status``); never the token hash."""
        return {
            "id": self.id,
            "model": self.model,
            "state": str(self.state),
            "provider": self.provider,
            "cluster": self.cluster,
            "url": self.url,
            "region": self.region,
            "zone": self.zone,
            "spot": self.spot,
            "gpu": self.gpu,
            "price_per_hour": str(self.price_per_hour),
            "running": self.running,
            "waiting": self.waiting,
            "kv_cache": round(self.kv_cache, 3),
            "in_flight": self.in_flight,
            "ejected_for": round(max(0.0, self.ejected_until - mono), 1) or None,
            "age_s": round(now - self.created_at, 1),
            "last_heartbeat_s": None
            if self.last_heartbeat is None
            else round(now - self.last_heartbeat, 1),
            "phase": self.phase,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "notice": self.notice,
        }


def view_of(row: Node) -> NodeView:
    return NodeView(
        id=row.id,
        model=row.model,
        state=NodeState(row.state),
        url=row.url,
        provider=row.provider,
        cluster=row.cluster,
        region=row.region,
        zone=row.zone,
        spot=row.spot,
        gpu=row.gpu,
        price_per_hour=row.price_per_hour,
        agent_version=row.agent_version,
        created_at=row.created_at.timestamp(),
        state_changed_at=row.state_changed_at.timestamp(),
        last_heartbeat=_ts(row.last_heartbeat_at),
        drain_deadline=_ts(row.drain_deadline),
        token_hash=row.token_hash,
        engine_key=row.engine_key,
        phase=row.phase,
        attempts=row.attempts,
        last_error=row.last_error,
        replaces=row.replaces,
        running=row.running,
        waiting=row.waiting,
        kv_cache=row.kv_cache,
    )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One agent report: engine health and load, plus facts that may change (agent upgrade)."""

    healthy: bool = True
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0
    agent_version: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """What an agent tells about its node when it registers."""

    url: str
    gpu: str | None = None
    region: str | None = None
    zone: str | None = None
    spot: bool | None = None
    agent_version: str | None = None
    weight: float = 1.0


StateListener = Callable[[NodeView, NodeState], None]
"""Called as ``listener(node, old_state)`` after every state change this process makes."""


@dataclass
class Registry:
    """Node states (database) and load (memory). One per control-plane process."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = SYSTEM_CLOCK
    heartbeat_interval: float = 5.0
    unhealthy_after: int = 3
    terminate_after: int = 10
    drain_timeout: float = 300.0
    full_refresh_seconds: float = 30.0
    nodes: dict[str, NodeView] = field(default_factory=dict)
    _synced_at: float = 0.0
    _full_at: float = float("-inf")
    _dirty: dict[str, NodeView] = field(default_factory=dict)
    _listeners: list[StateListener] = field(default_factory=list)

    # ---- reading -------------------------------------------------------------------------

    def on_change(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def get(self, node_id: str) -> NodeView:
        node = self.nodes.get(node_id)
        if node is None:
            raise NotFound(f"node {node_id!r} not found", param="node")
        return node

    def of_model(self, model: str) -> list[NodeView]:
        return [n for n in self.nodes.values() if n.model == model]

    async def refresh(self, *, full: bool = False) -> None:
        """Merge the database into memory: states and rows other replicas changed win, this
        process's own counters (in-flight, failures, ejection) and newer heartbeats stay.

        Cheap by default: only rows whose ``state_changed_at`` moved since the last refresh
        (every state change and every registration bumps it) are read. A full read, which also
        brings heartbeat figures flushed by other replicas, runs every
        ``full_refresh_seconds`` or when asked.
        """
        started = self.clock.now()
        full = full or started - self._full_at >= self.full_refresh_seconds
        table = _NODES
        q = select(table)
        if full:
            q = q.where(table.c.state != str(NodeState.TERMINATED))
        else:
            q = q.where(table.c.state_changed_at >= _dt(self._synced_at - REFRESH_SLACK))
        async with self.sessions() as s:
            rows = (await s.execute(q)).all()
        seen = set()
        for row in rows:
            if row.state == NodeState.TERMINATED:
                self._forget(row.id)
                continue
            seen.add(row.id)
            self._merge(view_of(row))  # type: ignore[arg-type]
        if full:
            for node_id in [i for i in self.nodes if i not in seen]:
                self._forget(node_id)
            self._full_at = started
        self._synced_at = started

    def _merge(self, fresh: NodeView) -> None:
        old = self.nodes.get(fresh.id)
        if old is None:
            self.nodes[fresh.id] = fresh
            self._notify(fresh, fresh.state)
            return
        old_state = old.state
        for name in _DB_OWNED:
            setattr(old, name, getattr(fresh, name))
        if fresh.last_heartbeat and (old.last_heartbeat or 0) < fresh.last_heartbeat:
            old.last_heartbeat = fresh.last_heartbeat
            old.running, old.waiting, old.kv_cache = fresh.running, fresh.waiting, fresh.kv_cache
        if old.state is not old_state:
            self._notify(old, old_state)

    def _forget(self, node_id: str) -> None:
        gone = self.nodes.pop(node_id, None)
        self._dirty.pop(node_id, None)
        if gone is not None and gone.state is not NodeState.TERMINATED:
            old_state, gone.state = gone.state, NodeState.TERMINATED
            self._notify(gone, old_state)

    async def _reload(self, node_id: str) -> None:
        """Re-read one node (its token may have changed through another replica)."""
        async with self.sessions() as s:
            row = (await s.execute(select(_NODES).where(_NODES.c.id == node_id))).first()
        if row is not None and row.state != NodeState.TERMINATED:
            self._merge(view_of(row))  # type: ignore[arg-type]

    # ---- state changes -------------------------------------------------------------------

    async def transition(
        self, node_id: str, new: NodeState, *, reason: str | None = None, **values: object
    ) -> NodeView:
        """Move a node to ``new`` (legal moves only) in the database, then in memory.

        The UPDATE is conditional on the state this process believes the node is in: when
        another replica moved it first, the row is re-read and the move re-checked.
        """
        node = self.get(node_id)
        old = node.state
        if old is new and not values:
            return node
        if old is not new:
            check_transition(old, new)
        now = utcnow(self.clock)
        sets: dict[str, object] = {"state": str(new), **values}
        if old is not new or "token_hash" in values:
            sets["state_changed_at"] = now  # other replicas' refresh picks the change up
        if reason is not None:
            sets["last_error"] = reason[:1024]
        async with self.sessions() as s:
            result = await s.execute(
                update(Node).where(Node.id == node_id, Node.state == str(old)).values(**sets)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                await s.rollback()
                await self.refresh()
                if self.get(node_id).state is old:
                    raise NotFound(f"node {node_id!r} vanished", param="node")
                return await self.transition(node_id, new, reason=reason, **values)
            await s.commit()
        node.state = new
        for name, value in sets.items():
            if name in ("state", "state_changed_at"):
                continue
            if isinstance(value, datetime):
                value = value.timestamp()
            setattr(node, _VIEW_NAMES.get(name, name), value)
        if "state_changed_at" in sets:
            node.state_changed_at = now.timestamp()
        if old is not new:
            log.info("node state", extra={"node": node_id, "from": str(old), "to": str(new)})
            if new is NodeState.TERMINATED:
                self._dirty.pop(node_id, None)
            self._notify(node, old)
        return node

    def _notify(self, node: NodeView, old: NodeState) -> None:
        for listener in self._listeners:
            listener(node, old)

    def add(self, node: NodeView) -> None:
        """Put a node the reconciler has just recorded into the in-memory view."""
        self.nodes[node.id] = node
        self._notify(node, node.state)

    async def begin_drain(
        self, node_id: str, *, deadline: float | None = None, reason: str | None = None
    ) -> NodeView:
        """No new requests from now on; :meth:`sweep` ends the drain at in-flight 0 or the
        deadline. A node that never became ready has nothing to drain and terminates."""
        node = self.get(node_id)
        if node.state is NodeState.DRAINING or node.state is NodeState.TERMINATED:
            return node
        if node.state in (NodeState.LAUNCHING, NodeState.REGISTERING):
            return await self.transition(node_id, NodeState.TERMINATED, reason=reason)
        at = deadline if deadline is not None else self.clock.now() + self.drain_timeout
        return await self.transition(
            node_id, NodeState.DRAINING, drain_deadline=_dt(at), phase=reason or node.phase
        )

    # ---- the node API ----------------------------------------------------------------------

    def authenticate(self, node_id: str, token: str) -> NodeView:
        """The node behind a per-node token; the same error for unknown node and bad token."""
        node = self.nodes.get(node_id)
        if (
            node is None
            or node.token_hash is None
            or not hmac.compare_digest(node.token_hash, hash_key(token))
        ):
            raise AuthenticationFailed("invalid node token")
        return node

    async def register(
        self, cluster: str, bootstrap_token: str, info: Registration
    ) -> tuple[NodeView, str]:
        """Exchange a cluster's bootstrap token for a node id and a fresh node token.

        The bootstrap token was issued at launch for exactly this cluster and is stored hashed;
        a registration for another cluster, or of a terminated node, is refused. An agent that
        restarts registers again and gets a new node token (the old one stops working).
        """
        async with self.sessions() as s:
            row = (
                await s.execute(select(Node).where(Node.cluster == cluster))
            ).scalar_one_or_none()
        if (
            row is None
            or row.bootstrap_hash is None
            or not hmac.compare_digest(row.bootstrap_hash, hash_key(bootstrap_token))
            or row.state in (NodeState.TERMINATED, NodeState.DRAINING)
        ):
            raise AuthenticationFailed("invalid bootstrap token for this cluster")
        if row.id not in self.nodes:
            self.nodes[row.id] = view_of(row)
        token = secrets.token_urlsafe(32)
        values: dict[str, object] = {
            "url": info.url.rstrip("/"),
            "token_hash": hash_key(token),
            "last_heartbeat_at": utcnow(self.clock),
            "phase": "registered",
        }
        for name in ("gpu", "region", "zone", "spot", "agent_version"):
            value = getattr(info, name)
            if value is not None:
                values[name] = value
        node = self.nodes[row.id]
        node.weight = info.weight
        node.healthy = True
        if node.state is NodeState.LAUNCHING:
            await self.transition(node.id, NodeState.REGISTERING)
        target = NodeState.READY if node.state is not NodeState.READY else node.state
        await self.transition(node.id, target, **values)
        node.last_error = None
        return node, token

    async def heartbeat(self, node_id: str, token: str, beat: Heartbeat) -> NodeView:
        """Record a heartbeat: memory now, database at the next :meth:`flush`. Only a health
        flip (ready ⇄ unhealthy) costs a database write right away."""
        try:
            node = self.authenticate(node_id, token)
        except AuthenticationFailed:
            await self._reload(node_id)  # registered again through another replica?
            node = self.authenticate(node_id, token)
        node.last_heartbeat = self.clock.now()
        node.running, node.waiting, node.kv_cache = beat.running, beat.waiting, beat.kv_cache
        node.healthy = beat.healthy
        if beat.agent_version is not None:
            node.agent_version = beat.agent_version
        self._dirty[node_id] = node
        if beat.healthy and node.state is NodeState.UNHEALTHY:
            await self.transition(node_id, NodeState.READY)
        elif not beat.healthy and node.state is NodeState.READY:
            await self.transition(node_id, NodeState.UNHEALTHY, reason="engine unhealthy")
        return node

    async def notice(self, node_id: str, token: str, *, kind: str, deadline: float | None) -> None:
        """A spot interruption notice: drain before the cloud takes the machine. The state
        listeners (the reconciler) launch the replacement at once."""
        node = self.authenticate(node_id, token)
        node.notice = kind
        at = self.clock.now() + self.drain_timeout
        if deadline is not None:
            at = min(at, deadline)
        await self.begin_drain(node_id, deadline=at, reason=f"notice:{kind}")

    async def deregister(self, node_id: str, token: str) -> None:
        """The agent is going away (after its own drain): terminate the node."""
        node = self.authenticate(node_id, token)
        if node.state is not NodeState.TERMINATED:
            await self.transition(node_id, NodeState.TERMINATED, phase="deregistered")

    # ---- periodic work ---------------------------------------------------------------------

    async def flush(self) -> int:
        """Write buffered heartbeat data in one batched UPDATE; returns the rows written."""
        if not self._dirty:
            return 0
        batch, self._dirty = self._dirty, {}
        rows = [
            {
                "id": n.id,
                "last_heartbeat_at": _dt(n.last_heartbeat or 0.0),
                "running": n.running,
                "waiting": n.waiting,
                "kv_cache": n.kv_cache,
                "agent_version": n.agent_version,
            }
            for n in batch.values()
            if n.state is not NodeState.TERMINATED
        ]
        if rows:
            async with self.sessions() as s:
                await s.execute(update(Node), rows)
                await s.commit()
        return len(rows)

    async def sweep(self) -> None:
        """Apply the heartbeat deadlines and finish drains; the reconciler calls this each tick
        and a stand-alone loop (:meth:`run`) calls it between ticks."""
        now = self.clock.now()
        sick = self.unhealthy_after * self.heartbeat_interval
        dead = self.terminate_after * self.heartbeat_interval
        for node in list(self.nodes.values()):
            if node.provider == "static" or node.state is NodeState.TERMINATED:
                continue
            if node.state is NodeState.DRAINING:
                if self._drained(node, now):
                    await self.transition(node.id, NodeState.TERMINATED, phase="drained")
                continue
            if node.state not in (NodeState.READY, NodeState.UNHEALTHY):
                continue  # launching/registering: the reconciler's launch timeout applies
            silent = now - (node.last_heartbeat or node.state_changed_at)
            if silent >= dead:
                await self.transition(
                    node.id, NodeState.TERMINATED, reason=f"no heartbeat for {silent:.1f}s"
                )
            elif silent >= sick and node.state is not NodeState.UNHEALTHY:
                await self.transition(
                    node.id, NodeState.UNHEALTHY, reason=f"no heartbeat for {silent:.1f}s"
                )
        for node_id in [i for i, n in self.nodes.items() if n.state is NodeState.TERMINATED]:
            del self.nodes[node_id]

    def _drained(self, node: NodeView, now: float) -> bool:
        if node.drain_deadline is not None and now >= node.drain_deadline:
            return True
        if node.in_flight > 0:
            return False
        beat_since = node.last_heartbeat is not None and node.last_heartbeat > node.state_changed_at
        silent = now - (node.last_heartbeat or node.state_changed_at)
        if silent >= self.unhealthy_after * self.heartbeat_interval:
            return True  # nobody is left to finish work on it
        return beat_since and node.running == 0 and node.waiting == 0

    @property
    def sweep_period(self) -> float:
        """How often :meth:`flush_and_sweep` runs: at least once a heartbeat interval, so
        unhealthy nodes leave routing within one interval of their deadline."""
        return min(1.0, self.heartbeat_interval)

    async def flush_and_sweep(self) -> None:
        """Write buffered heartbeats, then apply heartbeat deadlines and drain ends."""
        await self.flush()
        await self.sweep()
