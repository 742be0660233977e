"""Money arithmetic: exact Decimal, never float; sums of per-request costs match the cost of
the summed tokens; GPU cost shares add up; credits cover exactly what they can."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from fleet.billing.credits import credit_cover
from fleet.billing.pricing import QUANTUM, gpu_cost, token_cost

# Prices per 1M tokens with up to 4 decimals: every per-token price is exact at 1e-10.
prices = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=0, max_value=2_000_000)
money = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(tokens, tokens), min_size=1, max_size=50), prices, prices)
def test_per_request_costs_add_up_to_the_cost_of_all_tokens(reqs, inp, out) -> None:
    each = [token_cost(p, c, inp, out) for p, c in reqs]
    total = token_cost(sum(p for p, _ in reqs), sum(c for _, c in reqs), inp, out)
    assert all(isinstance(x, Decimal) for x in each)
    assert sum(each, Decimal(0)) == total


@given(tokens, tokens, prices, prices)
def test_cost_is_exact_and_monotone(p, c, inp, out) -> None:
    cost = token_cost(p, c, inp, out)
    assert cost == (p * inp + c * out) / Decimal(1_000_000)  # nothing rounded away
    assert cost >= 0 and token_cost(p + 1, c, inp, out) >= cost
    assert cost.as_tuple().exponent >= QUANTUM.as_tuple().exponent


@given(
    st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=3600 * 24),
)
def test_gpu_cost_of_an_hour_is_the_hourly_price(price, seconds) -> None:
    assert gpu_cost(price, Decimal(3600)) == price
    assert gpu_cost(price, Decimal(seconds)) <= price * (Decimal(seconds) / 3600) + QUANTUM


@given(st.lists(money, min_size=1, max_size=30), money)
def test_credit_covers_usage_in_order_and_never_more_than_granted(costs, granted) -> None:
    cumulative = Decimal(0)
    covered = Decimal(0)
    billed = Decimal(0)
    for cost in costs:
        part = credit_cover(cumulative, cumulative + cost, granted)
        assert Decimal(0) <= part <= cost
        covered += part
        billed += cost - part
        cumulative += cost
    assert covered == min(granted, cumulative)
    assert covered + billed == cumulative
