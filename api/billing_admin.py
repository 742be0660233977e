"""Billing over HTTP: the admin API's usage, margin, credits and Stripe export (bearer
``CIC_ADMIN_TOKEN``), and Stripe's webhook endpoint ``/webhooks/stripe`` (Stripe-signed)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from api.guards import actor, admin_guard
from api.usage_route import parse_time
from fleet import Conflict, InvalidRequest, Services
from fleet.billing.credits import grant_credit, list_grants
from fleet.billing.reports import credit_balance, margin_report, usage_report, usage_rows_json
from fleet.billing.webhooks import verify


class CreditIn(msgspec.Struct, forbid_unknown_fields=True):
    amount: Decimal
    kind: str = "promo"
    note: str = ""


class ExportIn(msgspec.Struct, forbid_unknown_fields=True):
    hour: datetime | None = None


def _svc(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


def _billing(state: State) -> Any:
    billing = _svc(state).billing
    assert billing is not None
    return billing


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    return (
        parse_time(since, "since") if since else None,
        parse_time(until, "until") if until else None,
    )


class BillingController(Controller):
    path = "/admin"
    guards = [admin_guard]
    tags = ["billing"]

    @get("/usage")
    async def usage(
        self,
        state: State,
        tenant: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        by: FromQuery[str] = "model",
    ) -> dict[str, Any]:
        svc = _svc(state)
        tenant_id = (await svc.tenancy.get_tenant(tenant)).id if tenant else None
        start, end = _window(since, until)
        rows = await usage_report(svc.sessions, tenant_id=tenant_id, since=start, until=end, by=by)
        return {"tenant_id": tenant_id, "by": by, "data": usage_rows_json(rows)}

    @get("/margin")
    async def margin(
        self,
        state: State,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> list[dict[str, Any]]:
        start, end = _window(since, until)
        rows = await margin_report(_svc(state).sessions, since=start, until=end)
        return [{k: str(v) for k, v in asdict(r).items()} for r in rows]

    @post("/tenants/{tenant:str}/credits")
    async def grant(
        self,
        state: State,
        request: Request[Any, Any, Any],
        tenant: FromPath[str],
        data: JSONBody[CreditIn],
    ) -> dict[str, Any]:
        svc = _svc(state)
        t = await svc.tenancy.get_tenant(tenant)
        row = await grant_credit(
            svc.sessions, t.id, data.amount, kind=data.kind, note=data.note, actor=actor(request)
        )
        _billing(state).quota.forget(t.id)
        return {
            "id": row.id,
            "tenant_id": t.id,
            "kind": row.kind,
            "amount": str(row.amount),
            "balance": str(await credit_balance(svc.sessions, t.id)),
        }

    @get("/tenants/{tenant:str}/credits")
    async def credits(self, state: State, tenant: FromPath[str]) -> dict[str, Any]:
        svc = _svc(state)
        t = await svc.tenancy.get_tenant(tenant)
        grants = await list_grants(svc.sessions, t.id)
        return {
            "tenant_id": t.id,
            "balance": str(await credit_balance(svc.sessions, t.id)),
            "grants": [
                {
                    "id": g.id,
                    "kind": g.kind,
                    "amount": str(g.amount),
                    "note": g.note,
                    "granted_by": g.granted_by,
                    "created_at": g.created_at.isoformat(),
                }
                for g in grants
            ],
        }

    @post("/billing/export", status_code=200)
    async def export(self, state: State, data: JSONBody[ExportIn]) -> dict[str, Any]:
        billing = _billing(state)
        if not billing.exporter.configured:
            raise Conflict("Stripe is not configured: set CIC_STRIPE_API_KEY")
        return await billing.export(data.hour)  # type: ignore[no-any-return]


@post("/webhooks/stripe", status_code=200, include_in_schema=True, tags=["billing"])
async def stripe_webhook(state: State, request: Request[Any, Any, Any]) -> dict[str, str]:
    """Stripe events: signature checked, handled once per event id."""
    svc = _svc(state)
    secret = svc.settings.stripe_webhook_secret
    if secret is None:
        raise InvalidRequest("webhooks are not configured: set CIC_STRIPE_WEBHOOK_SECRET")
    payload = await request.body()
    event = verify(payload, request.headers.get("stripe-signature"), secret.get_secret_value())
    outcome = await _billing(state).standing.handle(event)
    return {"status": outcome}


BILLING_ROUTES = [BillingController, stripe_webhook]
