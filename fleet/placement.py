"""Where the reconciler launches a pool's next nodes, and which nodes it drains first.

The autoscaler decides placements (region, zone, spot or on-demand, count) and stores them on
the pool; the reconciler converges on them here. Live nodes are matched to placements first
(a placement without a zone takes any zone of its region); a new node goes to the placement
short of the most nodes, so a preempted spot zone's replacement lands where the autoscaler now
wants it — another zone, region, cloud, or on-demand while spot capacity is missing. Live nodes
no placement wants any more are kept (no churn) but are the first drained on a scale-down.

A pool without placements (sized by hand with ``cicfleet scale``, or whose placements no longer
add up to its replicas) spreads new nodes over its regions with its own spot setting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class PlacedNode(Protocol):
    id: str
    region: str
    zone: str | None
    spot: bool


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one new node goes."""

    region: str
    zone: str | None
    spot: bool


@dataclass(frozen=True, slots=True)
class Target:
    slot: Slot
    count: int

    def wants(self, node: PlacedNode) -> bool:
        s = self.slot
        return (
            node.region == s.region
            and node.spot is s.spot
            and (s.zone is None or node.zone == s.zone)
        )


def targets_of(placements: Sequence[Mapping[str, Any]], replicas: int) -> list[Target] | None:
    """The stored placements as targets, or None when they do not describe ``replicas`` nodes
    (then the pool spreads by region)."""
    targets = [
        Target(Slot(str(p["region"]), p.get("zone"), bool(p["spot"])), int(p["count"]))
        for p in placements
        if int(p["count"]) > 0
    ]
    if not targets or sum(t.count for t in targets) != replicas:
        return None
    return targets


def _match(targets: Sequence[Target], live: Sequence[PlacedNode]) -> tuple[list[int], list[str]]:
    """How many live nodes each target holds, and the ids of live nodes no target wants."""
    held = [0] * len(targets)
    unwanted: list[str] = []
    for node in live:
        for i, t in enumerate(targets):
            if held[i] < t.count and t.wants(node):
                held[i] += 1
                break
        else:
            unwanted.append(node.id)
    return held, unwanted


def plan_launches(
    targets: Sequence[Target] | None,
    live: Sequence[PlacedNode],
    missing: int,
    *,
    regions: Sequence[str],
    spot: bool,
) -> list[Slot]:
    """``missing`` slots for new nodes (see the module doc)."""
    if missing <= 0:
        return []
    if targets is None:
        regions = list(regions) or ["local"]
        placed = Counter(n.region for n in live)
        out = []
        for _ in range(missing):
            region = min(regions, key=lambda r: (placed[r], regions.index(r)))
            placed[region] += 1
            out.append(Slot(region, None, spot))
        return out
    held, _ = _match(targets, live)
    out = []
    for _ in range(missing):
        short = [t.count - h for t, h in zip(targets, held, strict=True)]
        best = max(range(len(targets)), key=lambda i: (short[i], -i))
        held[best] += 1
        out.append(targets[best].slot)
    return out


def drain_first(targets: Sequence[Target] | None, live: Sequence[PlacedNode]) -> set[str]:
    """Ids of live nodes no placement wants: drained before any other on a scale-down."""
    if targets is None:
        return set()
    return set(_match(targets, live)[1])
