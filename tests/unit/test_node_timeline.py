"""A node's recent story for the console: state changes as they happen, heartbeats, router
ejections and notices as sampled, bounded per node."""

from __future__ import annotations

from fleet.clock import FakeClock
from fleet.node_timeline import NodeTimeline
from fleet.registry import NodeView, Registry
from fleet.tables import NodeState


def _timeline() -> tuple[NodeTimeline, Registry, FakeClock, NodeView]:
    clock = FakeClock()
    registry = Registry(sessions=None, clock=clock)  # type: ignore[arg-type]
    timeline = NodeTimeline(registry, clock=clock, keep_beats=3).attach()
    node = NodeView(id="node_1", model="m", state=NodeState.REGISTERING)
    registry.add(node)
    return timeline, registry, clock, node


def test_state_changes_are_recorded_newest_first() -> None:
    timeline, registry, clock, node = _timeline()
    clock.advance(5)
    old, node.state = node.state, NodeState.READY
    registry._notify(node, old)
    node.phase = "operator"
    old, node.state = node.state, NodeState.DRAINING
    registry._notify(node, old)
    details = [e.detail for e in timeline.events("node_1")]
    assert details == ["ready → draining (operator)", "registering → ready", "registering"]


def test_heartbeats_are_sampled_once_each_and_bounded() -> None:
    timeline, _, clock, node = _timeline()
    for running in range(5):
        clock.advance(5)
        node.last_heartbeat, node.running = clock.now(), running
        timeline.sample()
        timeline.sample()  # nothing new: no second entry
    assert [b.running for b in timeline.beats("node_1")] == [2, 3, 4]


def test_ejections_and_notices_become_events() -> None:
    timeline, _, clock, node = _timeline()
    node.ejected_until = clock.monotonic() + 30
    node.notice = "preemption"
    timeline.sample()
    timeline.sample()
    kinds = [(e.kind, e.detail) for e in timeline.events("node_1")]
    assert ("ejected", "out of routing for 30s") in kinds
    assert ("notice", "preemption") in kinds
    assert len(kinds) == 3  # plus the first state; repeated samples add nothing


def test_an_unknown_node_has_no_story() -> None:
    timeline, *_ = _timeline()
    assert timeline.events("node_x") == [] and timeline.beats("node_x") == []
