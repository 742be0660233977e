"""Usage, credit and margin reports over stored usage, exact in Decimal on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleet.billing.credits import grant_credit
from fleet.billing.reports import credit_balance, margin_report, usage_report
from fleet.tables import UsageRecord

T0 = datetime(2026, 11, 26, 10, 15, tzinfo=UTC)


async def _add(services, rows: list[dict]) -> None:
    async with services.sessions() as s:
        for n, r in enumerate(rows):
            base = dict(
                request_id=f"r{n}",
                tenant_id="ten_a",
                environment_id="env_a",
                key_id="key_a",
                model="m1",
                endpoint="chat.completions",
                prompt_tokens=10,
                completion_tokens=5,
                cost=Decimal("0.0000025"),
                gpu_cost=Decimal("0.000001"),
                created_at=T0,
            )
            base.update(r)
            s.add(UsageRecord(**base))
        await s.commit()


async def test_usage_grouped_by_model_key_hour_day(services) -> None:
    await _add(
        services,
        [
            {},
            {"model": "m2", "key_id": "key_b", "created_at": T0 + timedelta(hours=1)},
            {"tenant_id": "ten_other", "prompt_tokens": 999},
        ],
    )
    by_model = await usage_report(services.sessions, tenant_id="ten_a", by="model")
    assert [(r.group, r.requests, r.prompt_tokens, r.cost) for r in by_model] == [
        ("m1", 1, 10, Decimal("0.0000025")),
        ("m2", 1, 10, Decimal("0.0000025")),
    ]
    by_hour = await usage_report(services.sessions, tenant_id="ten_a", by="hour")
    assert [r.group for r in by_hour] == ["2026-11-26T10:00:00Z", "2026-11-26T11:00:00Z"]
    by_day = await usage_report(services.sessions, by="day")
    assert len(by_day) == 1 and by_day[0].requests == 3 and by_day[0].prompt_tokens == 1019
    by_key = await usage_report(
        services.sessions, tenant_id="ten_a", since=T0 + timedelta(minutes=30), by="key"
    )
    assert [(r.group, r.requests) for r in by_key] == [("key_b", 1)]


async def test_credit_balance_and_margin(services) -> None:
    await _add(services, [{}, {"model": "m2"}])
    assert await credit_balance(services.sessions, "ten_a") == 0
    await grant_credit(services.sessions, "ten_a", Decimal("0.00001"), kind="free_tier", actor="t")
    assert await credit_balance(services.sessions, "ten_a") == Decimal("0.000005")
    margins = await margin_report(services.sessions)
    assert [(m.model, m.revenue, m.gpu_cost, m.margin) for m in margins] == [
        ("m1", Decimal("0.0000025"), Decimal("0.000001"), Decimal("0.0000015")),
        ("m2", Decimal("0.0000025"), Decimal("0.000001"), Decimal("0.0000015")),
    ]
