"""The autoscaler: how many nodes a model pool needs, of which kind, and where.

Split in two so each part stays small and testable with a fake clock:

* **Policies** (registered classes, exactly one default) turn a :class:`PoolSnapshot` and
  ``now`` into a raw *desired* node count. They hold no state: the same snapshot gives the
  same answer. ``llm-load`` (default) sizes on the concurrency arrivals impose (request
  rate x time in service measured on the nodes; requests waiting at the gateway ask for a
  first node) and bumps on TTFT above the SLO; ``request-rate`` sizes on requests/s like
  SkyServe does; ``fixed`` keeps ``min_replicas``. Why load and not rate: see docs/autoscaling.md.
* :class:`PoolAutoscaler` (one per pool, stateful) applies hysteresis (upscale and downscale
  delays; from zero it scales at once), splits the target into spot and on-demand (base
  on-demand replicas, and on-demand fallback only while spot capacity is missing), and places
  new nodes over regions/zones, steered away from zones with recent preemptions or capacity
  errors (:mod:`fleet.preemptions`). It returns a :class:`ScalingDecision`: data the
  reconciler acts on; the autoscaler never calls a provider.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from fleet.logs import get_logger
from fleet.preemptions import ZoneTrouble, place_key

log = get_logger("cicfleet.autoscaler")


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """One node of the pool as the registry sees it (from its last heartbeat)."""

    node_id: str
    region: str
    zone: str | None = None
    spot: bool = True
    ready: bool = True  # False while launching/registering
    since: float = 0.0  # when it entered its current state
    running: int = 0  # requests vLLM is decoding
    queued: int = 0  # requests vLLM holds waiting
    tokens_per_s: float = 0.0
    service_s: float | None = None  # mean time in service (not queued) of recent requests
    ttft_p90_s: float | None = None
    notice: bool = False  # a spot interruption notice: it will be gone soon


@dataclass(frozen=True, slots=True)
class Zone:
    region: str
    zone: str | None = None
    spot_price: float = 1.0  # $/h per node
    on_demand_price: float = 3.0

    @property
    def key(self) -> str:
        return place_key(self.region, self.zone)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Desired-state knobs of one model pool (``cicfleet scale MODEL ...``)."""

    model: str
    min_replicas: int = 0
    max_replicas: int = 4
    policy: str | None = None  # None: the default policy
    target: float = 16.0  # per node: concurrent requests (llm-load) or requests/s (rate)
    ttft_slo_s: float = 2.0
    upscale_delay_s: float = 20.0
    downscale_delay_s: float = 600.0
    use_spot: bool = True
    base_on_demand: int = 0
    dynamic_on_demand: bool = True
    spot_grace_s: float = 420.0  # a spot launch slower than this: capacity is missing
    zones: tuple[Zone, ...] = (Zone("local"),)

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.target <= 0:
            raise ValueError("target must be positive")
        if not self.zones:
            raise ValueError("a pool needs at least one zone")


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """What the autoscaler sees of a pool at one instant."""

    config: PoolConfig
    nodes: tuple[NodeLoad, ...] = ()
    waiting: int = 0  # requests held at the gateway because no node is ready
    request_rate: float = 0.0  # requests/s over the last minute, as the gateway counted
    capacity_errors: dict[str, float] = field(default_factory=dict)  # zone key -> last error


@dataclass(frozen=True, slots=True)
class Placement:
    region: str
    zone: str | None
    spot: bool
    count: int


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    """Target node counts for one pool; ``placements`` sum to ``spot + on_demand``."""

    model: str
    desired: int  # what the policy asked for now
    target: int  # after hysteresis and clamping
    spot: int
    on_demand: int
    placements: tuple[Placement, ...]
    reason: str

    def count(self, *, spot: bool) -> int:
        return sum(p.count for p in self.placements if p.spot is spot)


# -- policies ----


class ScalingPolicy:
    """Base of autoscaling policies; subclasses register by ``name`` and one is ``default``."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[ScalingPolicy]]] = {}
    default_name: ClassVar[str | None] = None

    def __init_subclass__(cls, *, name: str, default: bool = False, **kw: object) -> None:
        super().__init_subclass__(**kw)
        if name in ScalingPolicy.registry:
            raise ValueError(f"scaling policy {name!r} registered twice")
        if default and ScalingPolicy.default_name is not None:
            raise ValueError("only one scaling policy may be the default")
        cls.name = name
        ScalingPolicy.registry[name] = cls
        if default:
            ScalingPolicy.default_name = name

    @classmethod
    def get(cls, name: str | None = None) -> ScalingPolicy:
        """An instance of the named policy (the default when ``name`` is None)."""
        key = name or cls.default_name
        if key not in cls.registry:
            raise ValueError(f"unknown scaling policy {key!r}; known: {sorted(cls.registry)}")
        return cls.registry[key]()

    def desired(self, snapshot: PoolSnapshot, now: float) -> int:
        """Nodes this pool needs now, clamped to the pool's min/max."""
        cfg = snapshot.config
        return max(cfg.min_replicas, min(cfg.max_replicas, self._desired(snapshot, now)))

    def _desired(self, snapshot: PoolSnapshot, now: float) -> int:
        raise NotImplementedError


class LoadPolicy(ScalingPolicy, name="llm-load", default=True):
    """Concurrency the arrivals impose, by Little's law: request rate x mean time in service
    as the nodes measure it (vLLM's end-to-end latency minus queue time), so long generations
    weigh more than short ones; ``ceil(concurrency / target)`` nodes. Before any node has
    measured a service time, the requests running and queued on the nodes stand in. At least
    one node while requests wait at the gateway; one more when ready nodes queue work and their
    TTFT is above the SLO."""

    def _desired(self, snapshot: PoolSnapshot, now: float) -> int:
        cfg = snapshot.config
        alive = [n for n in snapshot.nodes if not n.notice]
        measured = [n.service_s for n in alive if n.service_s]
        if snapshot.request_rate > 0 and measured:
            concurrency = snapshot.request_rate * sum(measured) / len(measured)
        else:
            concurrency = sum(n.running + n.queued for n in alive)
        need = math.ceil(concurrency / cfg.target - 1e-9)
        if snapshot.waiting and need == 0:
            need = 1  # a backlog at the gateway is a burst, not a sustained load: one node first
        ready = [n for n in alive if n.ready]
        slow = [
            n
            for n in ready
            if n.queued > 0 and n.ttft_p90_s is not None and n.ttft_p90_s > cfg.ttft_slo_s
        ]
        if slow and need <= len(ready):
            need = len(ready) + 1
        return need


class RequestRatePolicy(ScalingPolicy, name="request-rate"):
    """Requests per second over the last minute divided by ``target`` requests/s per node
    (what SkyServe does); blind to request size, kept for comparison and simple pools."""

    def _desired(self, snapshot: PoolSnapshot, now: float) -> int:
        return math.ceil(snapshot.request_rate / snapshot.config.target)


class FixedPolicy(ScalingPolicy, name="fixed"):
    """Always ``min_replicas``: for pools sized by hand."""

    def _desired(self, snapshot: PoolSnapshot, now: float) -> int:
        return snapshot.config.min_replicas


# -- the per-pool autoscaler ----


class PoolAutoscaler:
    """Turns policy answers into a stable, placed target for one pool."""

    def __init__(self, config: PoolConfig, *, trouble: ZoneTrouble | None = None) -> None:
        self.config = config
        self.policy = ScalingPolicy.get(config.policy)
        self.trouble = trouble or ZoneTrouble()
        self.target = config.min_replicas
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._below_peak = 0

    def reconfigure(self, config: PoolConfig) -> None:
        """New knobs from ``cicfleet scale``: apply at once, clamped, keeping hysteresis."""
        if config.policy != self.config.policy:
            self.policy = ScalingPolicy.get(config.policy)
        self.config = config
        self.target = max(config.min_replicas, min(config.max_replicas, self.target))

    def decide(self, snapshot: PoolSnapshot, now: float) -> ScalingDecision:
        desired = self.policy.desired(snapshot, now)
        reason = self._hysteresis(desired, now)
        spot, on_demand = self._split(snapshot, now)
        placements = self._place(snapshot, now, spot=spot, on_demand=on_demand)
        decision = ScalingDecision(
            model=self.config.model,
            desired=desired,
            target=self.target,
            spot=spot,
            on_demand=on_demand,
            placements=placements,
            reason=reason,
        )
        if reason != "steady":
            log.info(
                "scaling decision",
                extra={
                    "model": decision.model,
                    "desired": desired,
                    "target": self.target,
                    "spot": spot,
                    "on_demand": on_demand,
                    "reason": reason,
                },
            )
        return decision

    # -- hysteresis -------------------------------------------------------------------------

    def _hysteresis(self, desired: int, now: float) -> str:
        cfg = self.config
        if desired > self.target:
            self._below_since = None
            if self.target == 0:
                self.target = desired
                return "scale from zero"
            if self._above_since is None:
                self._above_since = now
            if now - self._above_since >= cfg.upscale_delay_s:
                self.target = desired
                self._above_since = None
                return "scale up"
            return "waiting to scale up"
        self._above_since = None
        if desired < self.target:
            if self._below_since is None:
                self._below_since, self._below_peak = now, desired
            self._below_peak = max(self._below_peak, desired)
            if now - self._below_since >= cfg.downscale_delay_s:
                self.target = self._below_peak
                self._below_since = None
                return "scale down"
            return "waiting to scale down"
        self._below_since = None
        return "steady"

    # -- spot / on-demand split ------------------------------------------------------------------

    def _split(self, snapshot: PoolSnapshot, now: float) -> tuple[int, int]:
        cfg = self.config
        if not cfg.use_spot:
            return 0, self.target
        base = min(cfg.base_on_demand, self.target)
        spot = self.target - base
        if not cfg.dynamic_on_demand or spot == 0:
            return spot, base
        spot_nodes = [n for n in snapshot.nodes if n.spot]
        ready_spot = sum(1 for n in spot_nodes if n.ready and not n.notice)
        slow_launches = sum(
            1 for n in spot_nodes if not n.ready and now - n.since > cfg.spot_grace_s
        )
        spot_zones = {z.key for z in cfg.zones}
        recent = {
            k
            for k, t in snapshot.capacity_errors.items()
            if k in spot_zones and now - t < cfg.spot_grace_s
        }
        if recent == spot_zones:
            missing = max(0, spot - ready_spot)
        else:
            missing = min(max(0, spot - ready_spot), slow_launches)
        return spot, base + missing

    # -- placement ----------------------------------------------------------------------------

    def _place(
        self, snapshot: PoolSnapshot, now: float, *, spot: int, on_demand: int
    ) -> tuple[Placement, ...]:
        out: list[Placement] = []
        for is_spot, count in ((True, spot), (False, on_demand)):
            if count == 0:
                continue
            counts = self._spread(snapshot, now, count=count, spot=is_spot)
            by_key = {z.key: z for z in self.config.zones}
            for key, n in sorted(counts.items()):
                z = by_key[key]
                out.append(Placement(region=z.region, zone=z.zone, spot=is_spot, count=n))
        return tuple(out)

    def _cost(self, zone: Zone, now: float, snapshot: PoolSnapshot, *, spot: bool) -> float:
        """Lower is better: price, plus (for spot) recent preemptions and capacity errors."""
        if not spot:
            return zone.on_demand_price
        cost = zone.spot_price * (1.0 + self.trouble.score(zone.key, now))
        last_error = snapshot.capacity_errors.get(zone.key)
        if last_error is not None and now - last_error < self.config.spot_grace_s:
            cost += 1000.0
        return cost

    def _spread(
        self, snapshot: PoolSnapshot, now: float, *, count: int, spot: bool
    ) -> Counter[str]:
        """Keep nodes where they are (up to ``count``, dropping the worst zones first), then
        add new ones one at a time to the zone with the lowest cost * (1 + nodes there), so
        a pool spreads over zones instead of piling into the cheapest one."""
        zones = list(self.config.zones)
        known = {z.key for z in zones}
        existing: Counter[str] = Counter(
            place_key(n.region, n.zone)
            for n in snapshot.nodes
            if n.spot is spot and not n.notice and place_key(n.region, n.zone) in known
        )
        by_key = {z.key: z for z in zones}
        ranked = sorted(
            existing.elements(), key=lambda k: self._cost(by_key[k], now, snapshot, spot=spot)
        )
        counts: Counter[str] = Counter(ranked[:count])
        while sum(counts.values()) < count:
            best = min(
                zones,
                key=lambda z: (
                    self._cost(z, now, snapshot, spot=spot) * (1 + counts[z.key]),
                    z.key,
                ),
            )
            counts[best.key] += 1
        return counts


def policy_names() -> Sequence[str]:
    """Registered policy names, the default first."""
    default = ScalingPolicy.default_name
    return [default, *sorted(n for n in ScalingPolicy.registry if n != default)]  # type: ignore[list-item]
