"""New nodes go where placements are short; nodes no placement wants go first on a scale-down."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

from hypothesis import given
from hypothesis import strategies as st

from fleet.placement import Slot, drain_first, plan_launches, targets_of

ZONES = [("us", "us-a"), ("us", "us-b"), ("eu", "eu-a")]
_ids = count()


@dataclass
class N:
    region: str
    zone: str | None
    spot: bool
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or f"n{next(_ids)}"


placement = st.builds(
    lambda z, spot, n: {"region": z[0], "zone": z[1], "spot": spot, "count": n},
    st.sampled_from(ZONES),
    st.booleans(),
    st.integers(0, 3),
)


@given(st.lists(placement, min_size=1, max_size=5), st.data())
def test_launches_fill_every_placement_exactly(placements, data) -> None:  # type: ignore[no-untyped-def]
    replicas = sum(p["count"] for p in placements)
    targets = targets_of(placements, replicas)
    if targets is None:
        assert replicas == 0
        return
    # Some nodes already live where a placement wants them.
    slots = [t.slot for t in targets for _ in range(t.count)]
    keep = data.draw(st.lists(st.booleans(), min_size=len(slots), max_size=len(slots)))
    live = [N(s.region, s.zone, s.spot) for s, k in zip(slots, keep, strict=True) if k]
    new = plan_launches(targets, live, replicas - len(live), regions=[], spot=True)
    after = live + [N(s.region, s.zone, s.spot) for s in new]
    assert drain_first(targets, after) == set()  # every node is wanted: placements are exact
    assert len(after) == replicas


def test_unwanted_nodes_drain_first_and_zoneless_placement_takes_any_zone() -> None:
    targets = targets_of([{"region": "us", "zone": None, "spot": True, "count": 1}], 1)
    a, b = N("us", "us-b", True), N("eu", "eu-a", True)
    assert drain_first(targets, [a, b]) == {b.id}
    assert plan_launches(targets, [], 1, regions=[], spot=False) == [Slot("us", None, True)]


def test_without_placements_nodes_spread_over_regions() -> None:
    assert targets_of([{"region": "us", "zone": None, "spot": True, "count": 2}], 3) is None
    live = [N("eu", None, True)]
    slots = plan_launches(None, live, 3, regions=["eu", "us"], spot=False)
    assert sorted(s.region for s in slots) == ["eu", "us", "us"]
    assert {s.spot for s in slots} == {False}
