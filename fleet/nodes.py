"""Nodes as the database knows them: static servers an operator registers by URL.

The registry of managed nodes (states, heartbeats, draining) builds on these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet import audit
from fleet.clock import Clock, utcnow
from fleet.errors import InvalidRequest, NotFound
from fleet.ids import new_id
from fleet.signals import Signal
from fleet.tables import Node, NodeState


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"node url {url!r} must be an http(s) URL", param="url")
    return url.rstrip("/")


class NodeService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock | None = None):
        self._sessions = sessions
        self._clock = clock
        # Fired after a node was added or removed, so the gateway's pool refreshes at once.
        self.changed = Signal()

    async def add_static(
        self,
        model: str,
        url: str,
        *,
        region: str = "local",
        price_per_hour: Decimal = Decimal(0),
        actor: str,
    ) -> Node:
        """Register an OpenAI-compatible server that someone else runs (e.g. your own vLLM)."""
        node = Node(
            id=new_id("node"),
            model=model,
            url=_check_url(url),
            state=NodeState.READY,
            provider="static",
            region=region,
            price_per_hour=price_per_hour,
        )
        async with self._sessions() as s:
            s.add(node)
            audit.record(
                s,
                actor=actor,
                action="node.add",
                target_type="node",
                target_id=node.id,
                detail={"model": model, "region": region},
            )
            await s.commit()
        self.changed.send()
        return node

    async def list(
        self, *, model: str | None = None, include_terminated: bool = False
    ) -> Sequence[Node]:
        async with self._sessions() as s:
            q = select(Node).order_by(Node.created_at)
            if model:
                q = q.where(Node.model == model)
            if not include_terminated:
                q = q.where(Node.state != NodeState.TERMINATED)
            return (await s.execute(q)).scalars().all()

    async def remove(self, node_id: str, *, actor: str) -> Node:
        async with self._sessions() as s:
            node = await s.get(Node, node_id)
            if node is None:
                raise NotFound(f"node {node_id!r} not found", param="node")
            node.state = NodeState.TERMINATED
            node.state_changed_at = utcnow(self._clock)
            audit.record(
                s, actor=actor, action="node.remove", target_type="node", target_id=node.id
            )
            await s.commit()
        self.changed.send()
        return node
