"""Prices a served request: tokens at the model's price in its region at the time it was
served, and the GPU cost of serving it (the node's price per hour times the request's share
of the node's GPU-seconds). ``Decimal`` throughout; never a float in the arithmetic.

Prices are rows with ``effective_from``: a change adds a row, so a request keeps the price in
force when it arrived, and history is never rewritten. A region's own price wins over the
``*`` default.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.tables import ModelPrice, Node

MILLION = Decimal(1_000_000)
SECONDS_PER_HOUR = Decimal(3600)
QUANTUM = Decimal("1e-10")  # the Money column's scale
_ZERO = Decimal(0)


def quantize(amount: Decimal) -> Decimal:
    """Round to the stored scale (banker's rounding, so rounding errors do not drift)."""
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def token_cost(
    prompt_tokens: int, completion_tokens: int, input_per_1m: Decimal, output_per_1m: Decimal
) -> Decimal:
    """What tokens cost at prices per 1M tokens."""
    return quantize((prompt_tokens * input_per_1m + completion_tokens * output_per_1m) / MILLION)


def gpu_cost(price_per_hour: Decimal, gpu_seconds: Decimal) -> Decimal:
    """A node's cost for ``gpu_seconds`` of its time."""
    return quantize(price_per_hour * gpu_seconds / SECONDS_PER_HOUR)


def gpu_seconds_share(latency_s: float, concurrent: int) -> Decimal:
    """A request's share of its node's time: its duration divided among the requests the node
    was serving at once (continuous batching shares the GPU)."""
    share = max(latency_s, 0.0) / max(concurrent, 1)
    return Decimal(f"{share:.6f}")


@dataclass(frozen=True, slots=True)
class _PriceList:
    starts: list[datetime]
    prices: list[tuple[Decimal, Decimal]]

    def at(self, when: datetime) -> tuple[Decimal, Decimal] | None:
        i = bisect.bisect_right(self.starts, when) - 1
        return self.prices[i] if i >= 0 else None


class Pricer:
    """Prices and node costs, cached and reloaded every ``refresh_seconds`` (both tables are
    small); a model or node not in the cache forces a reload once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = SYSTEM_CLOCK,
        refresh_seconds: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._refresh = refresh_seconds
        self._loaded_at: float | None = None
        self._prices: dict[tuple[str, str], _PriceList] = {}
        self._nodes: dict[str, Decimal] = {}

    async def load(self) -> None:
        async with self._sessions() as s:
            rows = (
                await s.execute(select(ModelPrice).order_by(ModelPrice.effective_from))
            ).scalars()
            grouped: dict[tuple[str, str], _PriceList] = {}
            for p in rows:
                pl = grouped.setdefault((p.model, p.region), _PriceList([], []))
                pl.starts.append(p.effective_from)
                pl.prices.append((p.input_per_1m, p.output_per_1m))
            nodes = (await s.execute(select(Node.id, Node.price_per_hour))).all()
        self._prices = grouped
        self._nodes = {nid: Decimal(price) for nid, price in nodes}
        self._loaded_at = self._clock.monotonic()

    async def prepare(self, models: set[str], nodes: set[str]) -> None:
        """Make sure the cache is fresh enough for these models and nodes."""
        stale = self._loaded_at is None or self._clock.monotonic() - self._loaded_at > self._refresh
        unknown_model = any(
            (m, "*") not in self._prices and not any(k[0] == m for k in self._prices)
            for m in models
        )
        unknown_node = any(n not in self._nodes for n in nodes)
        if stale or unknown_model or unknown_node:
            await self.load()

    def price(self, model: str, region: str, at: datetime) -> tuple[Decimal, Decimal]:
        """(input, output) per 1M tokens in force for ``model`` in ``region`` at ``at``."""
        for key in ((model, region), (model, "*")):
            pl = self._prices.get(key)
            if pl is not None:
                found = pl.at(at)
                if found is not None:
                    return found
        return (_ZERO, _ZERO)

    def node_price(self, node_id: str | None) -> Decimal:
        return self._nodes.get(node_id, _ZERO) if node_id else _ZERO


def epoch_to_utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
