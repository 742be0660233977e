"""What happened to each node lately, as this control-plane process saw it: state changes
(from the registry's listeners, exactly), heartbeats with their load figures, router
ejections and interruption notices (sampled from the registry's in-memory view).

It is memory only and bounded per node: a picture for operators (the console's node page),
not a record; what must survive lives in the database (node rows, audit log). Heartbeats
reach every replica through the registry's batched writes, so another replica's picture
is coarser by a flush interval.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.registry import NodeView, Registry
from fleet.tables import NodeState


@dataclass(frozen=True, slots=True)
class NodeEvent:
    at: float  # epoch seconds
    kind: str  # "state" | "ejected" | "notice"
    detail: str


@dataclass(frozen=True, slots=True)
class Beat:
    at: float
    running: int
    waiting: int
    kv_cache: float
    healthy: bool


@dataclass
class _Seen:
    events: deque[NodeEvent]
    beats: deque[Beat]
    last_beat: float | None = None
    ejected_until: float = 0.0
    notice: str | None = None


@dataclass
class NodeTimeline:
    registry: Registry
    clock: Clock = SYSTEM_CLOCK
    keep_events: int = 50
    keep_beats: int = 60
    keep_nodes: int = 500
    _nodes: dict[str, _Seen] = field(default_factory=dict)

    def attach(self) -> NodeTimeline:
        """Listen to the registry's state changes (call once)."""
        self.registry.on_change(self._changed)
        return self

    def events(self, node_id: str) -> list[NodeEvent]:
        """Newest first."""
        seen = self._nodes.get(node_id)
        return list(reversed(seen.events)) if seen else []

    def beats(self, node_id: str) -> list[Beat]:
        """Oldest first."""
        seen = self._nodes.get(node_id)
        return list(seen.beats) if seen else []

    def _seen(self, node_id: str) -> _Seen:
        seen = self._nodes.get(node_id)
        if seen is None:
            seen = self._nodes[node_id] = _Seen(
                deque(maxlen=self.keep_events), deque(maxlen=self.keep_beats)
            )
        return seen

    def _changed(self, node: NodeView, old: NodeState) -> None:
        detail = str(node.state) if old is node.state else f"{old} → {node.state}"
        if node.phase and node.state in (NodeState.DRAINING, NodeState.TERMINATED):
            detail += f" ({node.phase})"
        self._seen(node.id).events.append(NodeEvent(self.clock.now(), "state", detail))

    def sample(self) -> None:
        """Record new heartbeats, ejections and notices since the last sample."""
        mono = self.clock.monotonic()
        for node in list(self.registry.nodes.values()):
            if node.state is NodeState.TERMINATED and node.id not in self._nodes:
                continue
            seen = self._seen(node.id)
            if node.last_heartbeat is not None and node.last_heartbeat != seen.last_beat:
                seen.last_beat = node.last_heartbeat
                seen.beats.append(
                    Beat(
                        node.last_heartbeat, node.running, node.waiting, node.kv_cache, node.healthy
                    )
                )
            if node.ejected_until > mono and node.ejected_until != seen.ejected_until:
                seen.ejected_until = node.ejected_until
                seconds = round(node.ejected_until - mono)
                seen.events.append(
                    NodeEvent(self.clock.now(), "ejected", f"out of routing for {seconds}s")
                )
            if node.notice and node.notice != seen.notice:
                seen.notice = node.notice
                seen.events.append(NodeEvent(self.clock.now(), "notice", node.notice))
        # Nodes the registry forgot (terminated) keep their story a while for the console;
        # the oldest beyond ``keep_nodes`` go.
        for gone in list(self._nodes)[: max(0, len(self._nodes) - self.keep_nodes)]:
            if gone not in self.registry.nodes:
                del self._nodes[gone]

    async def run(self, *, every: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)
