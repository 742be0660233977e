"""The in-process counter store: the embedded control plane's limits, and every replica's
fallback while Redis is down. Same arithmetic as the Lua script in ``limits.lua``, and the same
conformance suite runs over both.

It is atomic because it never awaits between checking and taking: one event loop runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet.limits.counters import (
    CONCURRENCY_RETRY_MS,
    NEVER,
    UNIT,
    Check,
    Verdict,
    ceil_div,
    day_end_ms,
    drained,
    tightest,
)

_SWEEP_MS = 60_000


def rejection_rank(daily: bool, retry_ms: int) -> tuple[int, int]:
    """Which refusal the caller hears about: a request that can never fit, then an exhausted
    daily quota, then the rate limit that takes longest to clear."""
    if retry_ms == NEVER:
        return (2, 0)
    return (1 if daily else 0, retry_ms)


class MemoryCounterStore:
    def __init__(self) -> None:
        self._rates: dict[str, tuple[int, int, int]] = {}  # counter -> (level, last, empty_at)
        self._daily: dict[str, tuple[int, int]] = {}  # counter -> (count, day_end_ms)
        self._leases: dict[str, dict[str, int]] = {}  # counter -> {lease: deadline_ms}
        self._swept_ms = 0

    async def reserve(
        self,
        checks: Sequence[Check],
        *,
        tokens: int,
        lease: str,
        now_ms: int,
        lease_until_ms: int,
    ) -> Verdict:
        self._sweep(now_ms)
        end = day_end_ms(now_ms)
        rem_before: list[int] = []
        rem_after: list[int] = []
        resets_before: list[int] = []
        resets_after: list[int] = []
        writes: list[tuple[Check, int]] = []
        rejected: int | None = None
        worst: tuple[int, int] = (-1, 0)
        retry_ms = 0
        for i, c in enumerate(checks):
            cost = tokens if c.tokens else 1
            retry = 0
            if c.leased:
                held = self._leases.setdefault(c.counter, {})
                for lid in [lid for lid, dl in held.items() if dl <= now_ms]:
                    del held[lid]
                n = len(held)
                ok = n < c.limit
                retry = 0 if ok else CONCURRENCY_RETRY_MS
                rem_before.append(max(0, c.limit - n))
                rem_after.append(max(0, c.limit - n - 1))
                resets_before.append(0)
                resets_after.append(0)
                new = 0
            elif c.daily:
                count, _ = self._daily.get(c.counter, (0, end))
                new = count + cost
                ok = new <= c.limit
                if not ok:
                    retry = NEVER if cost > c.limit else end - now_ms
                rem_before.append(max(0, c.limit - count))
                rem_after.append(max(0, c.limit - new))
                resets_before.append(end - now_ms)
                resets_after.append(end - now_ms)
            else:
                level, last, _ = self._rates.get(c.counter, (0, now_ms, now_ms))
                cur = drained(level, last, c.limit, now_ms)
                cap = c.limit * UNIT
                new = cur + cost * UNIT
                ok = new <= cap
                if not ok:
                    retry = NEVER if cost * UNIT > cap else ceil_div(new - cap, c.limit)
                rem_before.append(max(0, (cap - cur) // UNIT))
                rem_after.append(max(0, (cap - new) // UNIT))
                resets_before.append(ceil_div(cur, c.limit))
                resets_after.append(ceil_div(new, c.limit))
            if not ok:
                rank = rejection_rank(c.daily, retry)
                if rank > worst:
                    worst, rejected, retry_ms = rank, i, retry
            writes.append((c, new))
        if rejected is not None:
            requests, tokens_fig = tightest(checks, rem_before, resets_before)
            return Verdict(rejected, retry_ms, requests, tokens_fig)
        for c, new in writes:
            if c.leased:
                self._leases[c.counter][lease] = lease_until_ms
            elif c.daily:
                self._daily[c.counter] = (new, end)
            else:
                self._set_rate(c, new, now_ms)
        requests, tokens_fig = tightest(checks, rem_after, resets_after)
        return Verdict(None, 0, requests, tokens_fig)

    async def settle(
        self, checks: Sequence[Check], *, delta_tokens: int, lease: str, now_ms: int
    ) -> None:
        for c in checks:
            if c.leased:
                self._leases.get(c.counter, {}).pop(lease, None)
            elif delta_tokens == 0 or not c.tokens:
                continue
            elif c.daily:
                if c.counter in self._daily:
                    count, end = self._daily[c.counter]
                    self._daily[c.counter] = (max(0, count + delta_tokens), end)
            else:
                level, last, _ = self._rates.get(c.counter, (0, now_ms, now_ms))
                self._set_rate(
                    c, max(0, drained(level, last, c.limit, now_ms) + delta_tokens * UNIT), now_ms
                )

    async def renew(
        self, leases: Sequence[tuple[str, Sequence[Check]]], *, now_ms: int, until_ms: int
    ) -> None:
        for lease, checks in leases:
            for c in checks:
                held = self._leases.get(c.counter)
                if held is not None and lease in held:
                    held[lease] = until_ms

    async def close(self) -> None:
        return None

    def _set_rate(self, c: Check, level: int, now_ms: int) -> None:
        last = max(now_ms, self._rates.get(c.counter, (0, 0, 0))[1])
        self._rates[c.counter] = (level, last, last + ceil_div(level, c.limit))

    def _sweep(self, now_ms: int) -> None:
        """Forget counters that hold nothing any more, at most once a minute."""
        if now_ms - self._swept_ms < _SWEEP_MS:
            return
        self._swept_ms = now_ms
        self._rates = {k: v for k, v in self._rates.items() if v[2] > now_ms}
        self._daily = {k: v for k, v in self._daily.items() if v[1] > now_ms - 86_400_000}
        self._leases = {
            k: {lid: dl for lid, dl in held.items() if dl > now_ms}
            for k, held in self._leases.items()
            if any(dl > now_ms for dl in held.values())
        }
