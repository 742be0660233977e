"""Which node serves the next request of a model.

Strategies are small registered classes (one default, :class:`LeastLoaded`); a new one is a
subclass with a ``name``. They only choose among candidates: the :class:`Router` decides who
is a candidate (ready, healthy, not ejected), prefers the caller's region and spills over
when the region's pick is saturated, counts in-flight requests and ejects outliers
(``eject_after`` consecutive upstream failures → out for ``eject_seconds``).

Candidate lists are rebuilt only when a node changes state or an ejection starts or ends, so a
pick costs a strategy call over a cached tuple: no filtering, no allocation.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.errors import InvalidRequest, NoCapacity
from fleet.registry import NodeView, Registry
from fleet.tables import NodeState

KV_WEIGHT = 4.0
"""How many queued requests a full KV cache is worth in a load score."""

SCAN_LIMIT = 32
"""Least-loaded compares at most this many candidates per pick (a rotating window), so a pick
stays O(1) in a pool of thousands while staying exact in pools of ordinary size."""


def load_score(node: NodeView) -> float:
    """A node's load: requests this gateway has in flight or the engine reports running
    (whichever is larger: the engine also sees other replicas' requests, our count is
    fresher), plus its queue, plus KV-cache pressure."""
    running = node.in_flight if node.in_flight > node.running else node.running
    return running + node.waiting + KV_WEIGHT * node.kv_cache


class RoutingStrategy:
    """Base of routing strategies: ``pick`` one of ``candidates`` (never empty)."""

    name: ClassVar[str]
    default: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[RoutingStrategy]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name in RoutingStrategy.registry:
            raise TypeError(f"routing strategy {cls.name!r} registered twice")
        if cls.default and any(s.default for s in RoutingStrategy.registry.values()):
            raise TypeError("only one routing strategy can be the default")
        RoutingStrategy.registry[cls.name] = cls

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def pick(self, candidates: Sequence[NodeView]) -> NodeView:
        raise NotImplementedError


class LeastLoaded(RoutingStrategy):
    """The lowest :func:`load_score` among (a rotating window of) the candidates."""

    name = "least-loaded"
    default = True

    def __init__(self, *, rng: random.Random | None = None) -> None:
        super().__init__(rng=rng)
        self._start = itertools.count()

    def pick(self, candidates: Sequence[NodeView]) -> NodeView:
        n = len(candidates)
        start = next(self._start) % n  # rotating start: ties go round, not to the first node
        best = candidates[start]
        best_score = load_score(best)
        for step in range(1, n if n < SCAN_LIMIT else SCAN_LIMIT):
            node = candidates[(start + step) % n]
            score = load_score(node)
            if score < best_score:
                best, best_score = node, score
        return best


class RoundRobin(RoutingStrategy):
    name = "round-robin"

    def __init__(self, *, rng: random.Random | None = None) -> None:
        super().__init__(rng=rng)
        self._next = itertools.count()

    def pick(self, candidates: Sequence[NodeView]) -> NodeView:
        return candidates[next(self._next) % len(candidates)]


class Random(RoutingStrategy):
    name = "random"

    def pick(self, candidates: Sequence[NodeView]) -> NodeView:
        return candidates[int(self.rng.random() * len(candidates))]


class PowerOfTwo(RoutingStrategy):
    """Two random candidates, the less loaded wins: near least-loaded spread at O(1)."""

    name = "power-of-two"

    def pick(self, candidates: Sequence[NodeView]) -> NodeView:
        n = len(candidates)
        a = candidates[int(self.rng.random() * n)]
        b = candidates[int(self.rng.random() * n)]
        return a if load_score(a) <= load_score(b) else b


class Weighted(RoutingStrategy):
    """Random in proportion to each node's ``weight`` (bigger GPUs get more traffic)."""

    name = "weighted"

    def __init__(self, *, rng: random.Random | None = None) -> None:
        super().__init__(rng=rng)
        self._cached: tuple[Sequence[NodeView], list[float]] | None = None

    def pick(self, candidates: Sequence[NodeView]) -> NodeView:
        if self._cached is None or self._cached[0] is not candidates:
            self._cached = (candidates, list(itertools.accumulate(n.weight for n in candidates)))
        cumulative = self._cached[1]
        i = bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])
        return candidates[min(i, len(candidates) - 1)]


def default_strategy() -> str:
    return next(name for name, cls in RoutingStrategy.registry.items() if cls.default)


def strategy(name: str, *, rng: random.Random | None = None) -> RoutingStrategy:
    """A fresh instance of the strategy called ``name``."""
    cls = RoutingStrategy.registry.get(name)
    if cls is None:
        known = ", ".join(sorted(RoutingStrategy.registry))
        raise InvalidRequest(f"unknown routing strategy {name!r} (known: {known})", param="routing")
    return cls(rng=rng)


@dataclass(slots=True)
class _Candidates:
    everywhere: tuple[NodeView, ...]
    by_region: dict[str, tuple[NodeView, ...]]
    until: float  # monotonic time at which an ejection ends and the lists must be rebuilt


@dataclass
class Router:
    """Picks nodes for requests, per model pool, over the registry's in-memory view."""

    registry: Registry
    clock: Clock = SYSTEM_CLOCK
    eject_after: int = 3
    eject_seconds: float = 30.0
    saturated_at: float = 64.0
    """A node whose load score reaches this is saturated: requests spill to other regions."""
    rng: random.Random | None = None
    _strategies: dict[str, RoutingStrategy] = field(default_factory=dict)
    _candidates: dict[str, _Candidates] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry.on_change(self._on_state_change)

    def _on_state_change(self, node: NodeView, _old: NodeState) -> None:
        self._candidates.pop(node.model, None)

    def set_strategy(self, model: str, name: str) -> None:
        """Route ``model`` with the strategy called ``name`` (the pool's ``routing``)."""
        self._strategies[model] = strategy(name, rng=self.rng)

    def use(self, model: str, name: str) -> None:
        """Like :meth:`set_strategy`, but keeps the current instance (and its rotation) when
        the pool already routes with ``name``."""
        current = self._strategies.get(model)
        if current is None or current.name != name:
            self.set_strategy(model, name)

    def strategy_of(self, model: str) -> RoutingStrategy:
        found = self._strategies.get(model)
        if found is None:
            found = self._strategies[model] = strategy(default_strategy(), rng=self.rng)
        return found

    def candidates(self, model: str) -> _Candidates:
        now = self.clock.monotonic()
        cached = self._candidates.get(model)
        if cached is not None and now < cached.until:
            return cached
        until = float("inf")
        everywhere: list[NodeView] = []
        by_region: dict[str, list[NodeView]] = {}
        for node in self.registry.nodes.values():
            if node.model != model or not node.routable:
                continue
            if node.ejected_until > now:
                until = min(until, node.ejected_until)
                continue
            everywhere.append(node)
            by_region.setdefault(node.region, []).append(node)
        fresh = _Candidates(tuple(everywhere), {r: tuple(ns) for r, ns in by_region.items()}, until)
        self._candidates[model] = fresh
        return fresh

    def pick(
        self, model: str, *, region: str | None = None, exclude: Collection[str] = ()
    ) -> NodeView:
        """The node for the next request of ``model``; raises :class:`NoCapacity` when none.

        With ``region``, nodes there are preferred; when the strategy's pick there is
        saturated, the pick is made again over every region. ``exclude`` skips nodes (a retry
        after a failed attempt).
        """
        c = self.candidates(model)
        chooser = self.strategy_of(model)
        if region is not None:
            local = c.by_region.get(region, ())
            if exclude:
                local = tuple(n for n in local if n.id not in exclude)
            if local:
                node = chooser.pick(local)
                if load_score(node) < self.saturated_at or len(local) == len(c.everywhere):
                    return node
        pool = c.everywhere
        if exclude:
            pool = tuple(n for n in pool if n.id not in exclude)
        if not pool:
            raise NoCapacity(f"no ready node serves {model!r}")
        return chooser.pick(pool)

    def acquire(self, node: NodeView) -> None:
        """A request to ``node`` starts (least-loaded counts it at once)."""
        node.in_flight += 1

    def release(self, node: NodeView, *, ok: bool) -> None:
        """The request ended; ``ok=False`` means the node failed it (connect error, 5xx)."""
        node.in_flight -= 1
        self.report(node, ok=ok)

    def report(self, node: NodeView, *, ok: bool) -> None:
        """Count consecutive upstream failures; at ``eject_after`` the node sits out
        ``eject_seconds`` (shown by ``cicfleet status``)."""
        if ok:
            node.failures = 0
            return
        node.failures += 1
        if node.failures >= self.eject_after:
            node.failures = 0
            node.ejected_until = self.clock.monotonic() + self.eject_seconds
            self._candidates.pop(node.model, None)
