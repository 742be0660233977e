"""Small pieces of the limits: figures layering, OpenAI's reset format, check building."""

from __future__ import annotations

import pytest

from fleet.errors import CicError, LimitsUnavailable, NoCapacity
from fleet.limits import UNLIMITED, Kind, Layer, LimitFigures, Limits
from fleet.limits.limiter import build_checks, format_reset
from fleet.limits.model import LayerLimits


def test_overrides_layer_over_plans() -> None:
    plan = Limits().overlay(LimitFigures(rpm=60, tpm=1000, concurrency=4))
    assert plan == Limits(rpm=60, tpm=1000, concurrency=4)
    effective = plan.overlay(LimitFigures(rpm=600, tpm=UNLIMITED, rpd=50))
    assert effective == Limits(rpm=600, tpm=None, rpd=50, concurrency=4)
    assert Limits().is_unlimited and not effective.is_unlimited


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (17, "17ms"),
        (1000, "1s"),
        (1200, "1.2s"),
        (60_000, "1m0s"),
        (90_500, "1m30.5s"),
        (3_723_000, "1h2m3s"),
    ],
)
def test_reset_reads_like_openai(ms: int, text: str) -> None:
    assert format_reset(ms) == text


def test_daily_counters_carry_their_day() -> None:
    layers = [LayerLimits(Layer.KEY, "k:1", Limits(rpm=1, tpd=10))]
    day = 20_000
    checks = build_checks(layers, day * 86_400_000 + 5)
    assert [(c.kind, c.counter) for c in checks] == [
        (Kind.RPM, "k:1:rpm"),
        (Kind.TPD, f"k:1:tpd:{day}"),
    ]


def test_fail_closed_is_a_503_the_clients_retry() -> None:
    err = LimitsUnavailable("down", retry_after=1.0)
    assert isinstance(err, NoCapacity) and isinstance(err, CicError)
    assert err.status == 503 and err.code == "limits_unavailable"
    assert err.headers["retry-after"] == "1"
