"""The gateway's view of routable nodes, and the choice of one node per request.

Routable means: a row of ``nodes`` in state READY with a URL. The view is reloaded from the
database every ``refresh_seconds`` (so nodes registered by another replica or by an agent show
up within about a second) and at once after a local change (``NodeService.changed``). Reading
it on the request path is a dict lookup and a walk over a short tuple: no I/O, no allocation.

The gateway counts requests in flight per node; :class:`RoutingStrategy` picks among the
candidates (least in flight by default). Routing policies plug in there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.logs import get_logger
from fleet.tables import Node, NodeState

log = get_logger("cicfleet.pool")


@dataclass(slots=True, eq=False)
class PoolNode:
    """A routable node as the gateway sees it; ``in_flight`` is this replica's count."""

    id: str
    model: str
    url: str
    region: str
    in_flight: int = 0


class RoutingStrategy(Protocol):
    def choose(self, nodes: Sequence[PoolNode], exclude: Collection[str]) -> PoolNode | None:
        """One of ``nodes`` whose id is not in ``exclude``, or None when there is none."""
        ...


class LeastInFlight:
    """The node with the fewest requests in flight; ties rotate so idle nodes share load."""

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, nodes: Sequence[PoolNode], exclude: Collection[str]) -> PoolNode | None:
        count = len(nodes)
        if count == 0:
            return None
        self._turn += 1
        start = self._turn % count
        best: PoolNode | None = None
        for i in range(count):
            node = nodes[(start + i) % count]
            if exclude and node.id in exclude:
                continue
            if best is None or node.in_flight < best.in_flight:
                best = node
        return best


class NodePool:
    """Routable nodes per model, refreshed from the database in the background."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        refresh_seconds: float = 1.0,
        strategy: RoutingStrategy | None = None,
    ) -> None:
        self._sessions = sessions
        self._refresh_seconds = refresh_seconds
        self._strategy: RoutingStrategy = strategy or LeastInFlight()
        self._by_model: dict[str, tuple[PoolNode, ...]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- request path ----------------------------------------------------------------------
    def nodes(self, model: str) -> tuple[PoolNode, ...]:
        return self._by_model.get(model, ())

    def pick(self, model: str, exclude: Collection[str] = ()) -> PoolNode | None:
        """The node to send the next request for ``model`` to, or None when none is left."""
        return self._strategy.choose(self._by_model.get(model, ()), exclude)

    # -- refresh ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Reload the view, keeping in-flight counts of nodes that stay."""
        q = select(Node.id, Node.model, Node.url, Node.region).where(
            Node.state == NodeState.READY,
            Node.url.is_not(None),  # type: ignore[union-attr]
        )
        async with self._sessions() as s:
            rows = (await s.execute(q.order_by(Node.created_at))).all()
        known = {n.id: n for nodes in self._by_model.values() for n in nodes}
        grouped: dict[str, list[PoolNode]] = {}
        for node_id, model, url, region in rows:
            node = known.get(node_id)
            if node is None or node.url != url or node.model != model:
                node = PoolNode(id=node_id, model=model, url=url, region=region)
            grouped.setdefault(model, []).append(node)
        self._by_model = {m: tuple(nodes) for m, nodes in grouped.items()}

    def refresh_soon(self) -> None:
        """Ask the background loop to reload now (called after a local change)."""
        self._wake.set()

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._refresh_seconds)
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("node pool refresh failed", extra={"error": type(exc).__name__})
