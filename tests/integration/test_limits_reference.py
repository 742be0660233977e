"""Random request sequences, run on both stores, against a small reference model of the
limits written separately (exact fractions, continuous time, plain dictionaries).

Each step compares what a caller sees: admitted or not, which error, Retry-After and the
x-ratelimit headers.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import FakeClock, QuotaExceeded, RateLimited
from fleet.limits import Admission, Layer, Limits
from fleet.limits.limiter import format_reset
from tests.limits_support import START, StoreFactory, key_info, request

KEYS = [key_info("k0", "e0", "t0"), key_info("k1", "e0", "t0"), key_info("k2", "e1", "t1")]
KIND_ORDER = ("rpm", "tpm", "rpd", "tpd", "concurrency")
LEASE_MS = 60_000
UNITS = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "rpd": "requests per day",
    "tpd": "tokens per day",
    "concurrency": "concurrent requests",
}
DAY_MS = 86_400_000


@dataclass
class Reference:
    """The limits as a user would describe them: a per-minute bucket of ``limit`` that
    empties evenly over one minute; per-UTC-day counts; at most ``limit`` leases alive."""

    layers: dict[Layer, Limits]
    level: dict[str, Fraction] = field(default_factory=dict)
    touched: dict[str, int] = field(default_factory=dict)
    daily: dict[tuple[str, int], int] = field(default_factory=dict)
    leases: dict[str, dict[int, int]] = field(default_factory=dict)

    def _figures(self, key):  # (layer, kind, limit, counter)
        ident = {
            Layer.GLOBAL: "g",
            Layer.TENANT: key.tenant_id,
            Layer.ENVIRONMENT: key.environment_id,
            Layer.KEY: key.key_id,
        }
        for layer in Layer:
            limits = self.layers.get(layer)
            for kind in KIND_ORDER:
                limit = getattr(limits, kind) if limits else None
                if limit is not None:
                    yield layer, kind, limit, f"{ident[layer]}/{kind}"

    def _bucket(self, counter: str, limit: int, now: int) -> Fraction:
        elapsed = max(0, now - self.touched.get(counter, now))
        return max(
            Fraction(0), self.level.get(counter, Fraction(0)) - Fraction(limit * elapsed, 60_000)
        )

    def acquire(self, key, tokens: int, now: int, lease: int):
        figures = list(self._figures(key))
        day, to_midnight = now // DAY_MS, (now // DAY_MS + 1) * DAY_MS - now
        refusals, state_before, state_after = [], [], []
        for layer, kind, limit, counter in figures:
            cost = tokens if kind in ("tpm", "tpd") else 1
            if kind == "concurrency":
                alive = {k: v for k, v in self.leases.get(counter, {}).items() if v > now}
                self.leases[counter] = alive
                ok = len(alive) < limit
                state_before.append((limit - len(alive), 0))
                state_after.append((limit - len(alive) - 1, 0))
                wait = None if ok else 1000
            elif kind in ("rpd", "tpd"):
                used = self.daily.get((counter, day), 0)
                ok = used + cost <= limit
                state_before.append((max(0, limit - used), to_midnight))
                state_after.append((max(0, limit - used - cost), to_midnight))
                wait = None if ok else (-1 if cost > limit else to_midnight)
            else:
                lvl = self._bucket(counter, limit, now)
                ok = lvl + cost <= limit
                state_before.append(
                    (max(0, math.floor(limit - lvl)), math.ceil(lvl * 60_000 / limit))
                )
                new = lvl + cost
                state_after.append(
                    (max(0, math.floor(limit - new)), math.ceil(new * 60_000 / limit))
                )
                wait = (
                    None
                    if ok
                    else (-1 if cost > limit else math.ceil((new - limit) * 60_000 / limit))
                )
            if wait is not None:
                rank = (2, 0) if wait == -1 else (1 if kind in ("rpd", "tpd") else 0, wait)
                refusals.append((rank, layer, kind, limit, wait))
        state = state_before if refusals else state_after
        headers = {}
        for suffix, kinds in (("requests", ("rpm", "rpd")), ("tokens", ("tpm", "tpd"))):
            best = None
            for i, (_, kind, _, _) in enumerate(figures):
                if kind in kinds and (best is None or state[i][0] < state[best][0]):
                    best = i
            if best is not None:
                headers[f"x-ratelimit-limit-{suffix}"] = str(figures[best][2])
                headers[f"x-ratelimit-remaining-{suffix}"] = str(state[best][0])
                headers[f"x-ratelimit-reset-{suffix}"] = format_reset(state[best][1])
        if refusals:
            _, layer, kind, limit, wait = max(refusals, key=lambda r: r[0])
            outcome = "never" if wait == -1 else ("quota" if kind in ("rpd", "tpd") else "rate")
            return outcome, (layer.value, kind), headers
        for _, kind, limit, counter in figures:
            if kind == "concurrency":
                self.leases[counter][lease] = now + LEASE_MS
            elif kind in ("rpd", "tpd"):
                cost = tokens if kind == "tpd" else 1
                self.daily[(counter, day)] = self.daily.get((counter, day), 0) + cost
            else:
                cost = tokens if kind == "tpm" else 1
                self.level[counter] = self._bucket(counter, limit, now) + cost
                self.touched[counter] = max(now, self.touched.get(counter, now))
        return "ok", (key, tokens, day, figures), headers

    def release(self, handle, used: int, now: int, lease: int) -> None:
        _, tokens, day, figures = handle
        for _, kind, limit, counter in figures:
            if kind == "concurrency":
                self.leases.get(counter, {}).pop(lease, None)
            elif kind == "tpd" and (counter, day) in self.daily:
                self.daily[(counter, day)] = max(0, self.daily[(counter, day)] + used - tokens)
            elif kind == "tpm":
                self.level[counter] = max(
                    Fraction(0), self._bucket(counter, limit, now) + used - tokens
                )
                self.touched[counter] = max(now, self.touched.get(counter, now))


def limits_strategy() -> st.SearchStrategy[Limits]:
    def opt(lo: int, hi: int) -> st.SearchStrategy[int | None]:
        return st.one_of(st.none(), st.integers(lo, hi))

    return st.builds(
        Limits,
        rpm=opt(1, 6),
        tpm=opt(50, 1500),
        rpd=opt(1, 12),
        tpd=opt(100, 4000),
        concurrency=opt(1, 3),
    )


LAYERS = st.dictionaries(st.sampled_from(list(Layer)), limits_strategy(), max_size=4)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.integers(0, 2), st.integers(0, 400)),
        st.tuples(st.just("release"), st.integers(0, 50), st.integers(0, 500)),
        st.tuples(st.just("advance"), st.sampled_from([0, 1, 150, 999, 4_000, 20_000, 61_000])),
    ),
    min_size=1,
    max_size=40,
)
_example = itertools.count()


async def run_sequence(factory: StoreFactory, layers, ops) -> None:
    clock = FakeClock(START)
    limiter = factory.limiter(layers, clock, lease_seconds=LEASE_MS / 1000)
    ref = Reference(dict(layers))
    held: list[tuple[Admission, object, int]] = []
    leases = itertools.count()
    try:
        for op in ops:
            now = int(clock.now() * 1000)
            if op[0] == "advance":
                clock.advance(op[1] / 1000)
            elif op[0] == "acquire":
                key, tokens = KEYS[op[1]], op[2]
                lease = next(leases)
                outcome, detail, headers = ref.acquire(key, tokens, now, lease)
                try:
                    adm = await limiter.acquire(request(key, tokens))
                except RateLimited as exc:
                    got = (
                        "quota"
                        if isinstance(exc, QuotaExceeded)
                        else ("never" if "too large" in exc.message else "rate")
                    )
                    assert got == outcome, (op, exc.message)
                    layer, kind = detail
                    assert f"{UNITS[kind]} on the {layer} layer" in exc.message
                    assert {k: v for k, v in exc.headers.items() if k.startswith("x-")} == headers
                else:
                    assert outcome == "ok", (op, detail)
                    assert adm.headers == headers
                    held.append((adm, detail, lease))
            elif held:
                adm, handle, lease = held.pop(op[1] % len(held))
                ref.release(handle, op[2], now, lease)
                await limiter.release(adm, used_tokens=op[2])
    finally:
        await limiter.close()


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_sequences_match_the_reference(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    base = request.getfixturevalue("redis_prefix") if kind == "redis" else ""

    @settings(
        max_examples=150 if kind == "memory" else 60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(layers=LAYERS, ops=OPS)
    def check(layers, ops) -> None:
        async def main() -> None:
            factory = StoreFactory(kind, url, f"{base}:{next(_example)}")
            try:
                await run_sequence(factory, layers, ops)
            finally:
                await factory.aclose()

        asyncio.run(main())

    check()
