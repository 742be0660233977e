"""The counting contract both stores obey (Redis in production, in-process when embedded or
when Redis is down), and the arithmetic they share.

A request is a list of :class:`Check` (one per limited figure of each layer). ``reserve`` takes
all of them or none; ``settle`` corrects the token figures and frees the concurrency lease.

Per-minute figures are GCRA in its "level" form, in exact integers: a counter holds ``level``
(units of 1/60000 of a request or token, so one request is 60000 units) and the millisecond it
was last touched; it drains ``limit`` units per millisecond (the full limit per minute) and a
request fits when ``level + cost * 60000 <= limit * 60000``. A full minute's allowance can
therefore be spent at once (burst = the per-minute limit), after which requests are admitted at
the steady rate. Daily figures are counters per UTC day. Concurrency figures are sets of leases
with deadlines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleet.limits.model import Kind, Layer

UNIT = 60_000
"""Level units per request or token: one minute in milliseconds, so draining ``limit`` units
per millisecond empties a full bucket in exactly one minute."""
DAY_MS = 86_400_000
CONCURRENCY_RETRY_MS = 1_000
"""What a rejected caller is told to wait for a concurrency slot (when one frees is unknown)."""
NEVER = -1
"""``retry_ms`` of a request larger than the limit itself: retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Check:
    """One limited figure of one layer; ``counter`` names its state in the store.
    ``tokens``/``daily``/``leased`` are the kind's traits, computed once (the hot path reads
    them for every check of every request)."""

    layer: Layer
    kind: Kind
    limit: int
    counter: str
    tokens: bool = field(init=False, compare=False)
    daily: bool = field(init=False, compare=False)
    leased: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", self.kind.counts_tokens)
        object.__setattr__(self, "daily", self.kind.is_daily)
        object.__setattr__(self, "leased", self.kind is Kind.CONCURRENCY)


@dataclass(frozen=True, slots=True)
class Figure:
    """The state of check ``index`` as OpenAI's headers report it."""

    index: int
    remaining: int
    reset_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer of ``reserve``: ``rejected`` is the index of the check that refused (the one
    to wait longest for), or ``None`` when everything was reserved. ``requests`` and
    ``tokens`` are the tightest request figure (rpm/rpd) and token figure (tpm/tpd): fewest
    remaining, the outermost on a tie; after the reservation when admitted, as they stand when
    refused. Only these two travel back from Redis, not a figure per check."""

    rejected: int | None
    retry_ms: int
    requests: Figure | None
    tokens: Figure | None


def tightest(
    checks: Sequence[Check], remaining: Sequence[int], reset_ms: Sequence[int]
) -> tuple[Figure | None, Figure | None]:
    """The request and token figures with the fewest remaining (first on a tie)."""
    best: list[int | None] = [None, None]
    for i, c in enumerate(checks):
        if c.leased:
            continue
        group = 1 if c.tokens else 0
        b = best[group]
        if b is None or remaining[i] < remaining[b]:
            best[group] = i
    r, t = best
    return (
        None if r is None else Figure(r, remaining[r], reset_ms[r]),
        None if t is None else Figure(t, remaining[t], reset_ms[t]),
    )


class CounterStore(Protocol):
    async def reserve(
        self,
        checks: Sequence[Check],
        *,
        tokens: int,
        lease: str,
        now_ms: int,
        lease_until_ms: int,
    ) -> Verdict:
        """Take one request, ``tokens`` tokens and a lease on every check, or nothing."""
        ...

    async def settle(
        self, checks: Sequence[Check], *, delta_tokens: int, lease: str, now_ms: int
    ) -> None:
        """Add ``delta_tokens`` (negative: refund) to the token figures and drop the lease."""
        ...

    async def renew(
        self, leases: Sequence[tuple[str, Sequence[Check]]], *, now_ms: int, until_ms: int
    ) -> None:
        """Move the deadline of live leases, so only the leases of a dead holder expire."""
        ...

    async def close(self) -> None: ...


def day_end_ms(now_ms: int) -> int:
    return (now_ms // DAY_MS + 1) * DAY_MS


def daily_counter(base: str, now_ms: int) -> str:
    """Daily counters carry their UTC day, so a correction after midnight hits the right day."""
    return f"{base}:{now_ms // DAY_MS}"


def drained(level: int, last_ms: int, limit: int, now_ms: int) -> int:
    """The level of a per-minute counter at ``now_ms`` (a clock behind ``last_ms`` drains 0)."""
    return max(0, level - limit * max(0, now_ms - last_ms))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
