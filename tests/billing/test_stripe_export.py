"""Hourly usage reaches Stripe as meter events: whole numbers, once per identifier, credits
first, late rows as corrections, 429s retried, failures counted and retried on the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import respx
from sqlalchemy import select

from fleet import load_settings
from fleet.billing.aggregation import aggregate, hour_start
from fleet.billing.credits import grant_credit
from fleet.billing.stripe_export import StripeExporter
from fleet.billing.tables import BillingEvent, UsageHourly
from fleet.tables import UsageRecord
from tests.billing.fake_stripe import BASE, FakeStripe

HOUR = hour_start(datetime.now(UTC)) - timedelta(hours=3)


@pytest.fixture
def fake_stripe():
    with respx.mock(assert_all_called=False) as router:
        yield FakeStripe(router)


async def _usage(services, n: int, *, tenant: str, at: datetime, start: int = 0) -> None:
    async with services.sessions() as s:
        for i in range(start, start + n):
            s.add(
                UsageRecord(
                    request_id=f"{tenant}-{i}",
                    tenant_id=tenant,
                    environment_id="env",
                    key_id="key",
                    model="m",
                    endpoint="chat.completions",
                    prompt_tokens=1000,
                    completion_tokens=500,
                    cost=Decimal("0.0012345"),
                    created_at=at + timedelta(seconds=i),
                )
            )
        await s.commit()


def _exporter(services, failures: list[int] | None = None) -> StripeExporter:
    settings = load_settings(stripe_api_key="sk_test_fake", stripe_api_base=BASE)

    async def no_sleep(_: float) -> None:
        return None

    count = failures if failures is not None else []
    return StripeExporter(
        services.sessions, settings, on_failure=lambda: count.append(1), sleep=no_sleep
    )


async def _events(services) -> list[BillingEvent]:
    async with services.sessions() as s:
        return list((await s.execute(select(BillingEvent).order_by(BillingEvent.id))).scalars())


async def test_export_twice_sends_each_identifier_once(services, fake_stripe) -> None:
    await _usage(services, 10, tenant="ten_a", at=HOUR)
    await _usage(services, 4, tenant="ten_b", at=HOUR + timedelta(minutes=5))
    await aggregate(services.sessions, hours=[HOUR])
    exporter = _exporter(services)
    first = await exporter.export([HOUR])
    assert first.sent == 6 and first.failed == 0
    again = await exporter.export([HOUR])
    assert again.sent == 0
    assert set(fake_stripe.calls.values()) == {1}  # no identifier sent twice
    cus_a = fake_stripe.customers["ten_a"]
    # $0.0012345 x 10 = $0.012345 -> 12,345 micro-dollars; no credit
    assert fake_stripe.totals(cus_a) == {
        "cic_input_tokens": 10_000,
        "cic_output_tokens": 5_000,
        "cic_billable_microusd": 12_345,
    }
    rows = await _events(services)
    assert {r.status for r in rows} == {"sent"} and len(rows) == 6
    assert all(r.response and r.response.startswith("ok ") for r in rows)


async def test_stripe_usage_hourly_and_records_agree_after_late_rows(services, fake_stripe) -> None:
    await _usage(services, 3, tenant="ten_a", at=HOUR)
    await aggregate(services.sessions, hours=[HOUR])
    exporter = _exporter(services)
    await exporter.export([HOUR])
    # A row served in that hour arrives late (e.g. replayed from a journal after a crash).
    await _usage(services, 2, tenant="ten_a", at=HOUR + timedelta(minutes=50), start=3)
    await aggregate(services.sessions)
    await exporter.export([HOUR])
    await exporter.export([HOUR])
    async with services.sessions() as s:
        hourly = (await s.execute(select(UsageHourly))).scalars().one()
    assert hourly.hour == HOUR and hourly.requests == 5 and hourly.prompt_tokens == 5000
    totals = fake_stripe.totals(fake_stripe.customers["ten_a"])
    assert totals["cic_input_tokens"] == hourly.prompt_tokens
    assert totals["cic_output_tokens"] == hourly.completion_tokens
    seqs = sorted((r.meter, r.seq, r.value) for r in await _events(services))
    assert ("cic_input_tokens", 1, 2000) in seqs  # the correction carries only the late rows


async def test_credit_is_spent_before_anything_is_billed(services, fake_stripe) -> None:
    await _usage(services, 10, tenant="ten_a", at=HOUR)  # $0.012345
    await _usage(services, 10, tenant="ten_a", at=HOUR + timedelta(hours=1), start=10)
    await grant_credit(services.sessions, "ten_a", Decimal("0.02"), kind="free_tier", actor="t")
    await aggregate(services.sessions, hours=[HOUR, HOUR + timedelta(hours=1)])
    exporter = _exporter(services)
    await exporter.export([HOUR, HOUR + timedelta(hours=1)])
    totals = fake_stripe.totals(fake_stripe.customers["ten_a"])
    # $0.02469 used, $0.02 covered by credit: 4,690 micro-dollars billed, all in hour two
    assert totals["cic_billable_microusd"] == 4_690
    amounts = {
        r.hour: (r.value, r.credit_applied)
        for r in await _events(services)
        if r.meter == "cic_billable_microusd"
    }
    assert amounts[HOUR + timedelta(hours=1)] == (4_690, Decimal("0.007655"))
    assert HOUR not in amounts  # fully covered: nothing billed for hour one


async def test_rate_limited_calls_back_off_and_failures_retry_next_run(
    services, fake_stripe
) -> None:
    await _usage(services, 1, tenant="ten_a", at=HOUR)
    await aggregate(services.sessions, hours=[HOUR])
    failures: list[int] = []
    exporter = _exporter(services, failures)
    fake_stripe.fail_next = [429, 429, 500]
    result = await exporter.export([HOUR])
    # first meter: two 429s then a 500 -> failed; the other two meters went through
    assert result.sent == 2 and result.failed == 1 and failures == [1]
    failed = [r for r in await _events(services) if r.status == "failed"]
    assert len(failed) == 1 and "500" in (failed[0].response or "")
    result = await exporter.export([HOUR])
    assert result.sent == 1 and result.failed == 0
    assert {r.status for r in await _events(services)} == {"sent"}
    # the failed event was re-sent with its own identifier: billed once
    assert fake_stripe.totals(fake_stripe.customers["ten_a"])["cic_input_tokens"] == 1000


async def test_closed_hours_wait_for_the_delay(services) -> None:
    exporter = _exporter(services)
    hours = exporter.closed_hours()
    now = datetime.now(UTC)
    assert hours[-1] + timedelta(hours=1) + timedelta(seconds=300) <= now
    assert len(hours) == 48
