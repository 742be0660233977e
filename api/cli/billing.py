"""Operator commands for usage, credits, margin and the Stripe export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from api.cli.common import client, emit, json_option

USAGE_COLUMNS = ("group", "requests", "prompt_tokens", "completion_tokens", "cost")
MARGIN_COLUMNS = ("tenant_id", "model", "revenue", "gpu_cost", "margin")


def _since(value: str | None) -> str | None:
    """``--since`` as given (ISO-8601) or relative: ``90m``, ``24h``, ``7d``."""
    if not value:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[-1:] in units and value[:-1].isdigit():
        delta = timedelta(**{units[value[-1]]: int(value[:-1])})
        return (datetime.now(UTC) - delta).isoformat()
    return value


@click.command()
@click.option("--tenant", help="Tenant id or name (all tenants by default).")
@click.option("--since", help="ISO-8601 time or relative (24h, 7d).")
@click.option("--until", help="ISO-8601 time.")
@click.option(
    "--by", type=click.Choice(["model", "key", "hour", "day"]), default="model", show_default=True
)
@json_option
def usage(tenant: str | None, since: str | None, until: str | None, by: str, as_json: bool) -> None:
    """Requests, tokens and cost, grouped by model, key, hour or day."""
    params = {"by": by, "tenant": tenant, "since": _since(since), "until": _since(until)}
    out = client().get("/admin/usage", params={k: v for k, v in params.items() if v})
    emit(out["data"] if not as_json else out, as_json=as_json, columns=USAGE_COLUMNS, title="usage")


@click.command()
@click.option("--since", help="ISO-8601 time or relative (24h, 7d).")
@click.option("--until", help="ISO-8601 time.")
@json_option
def margin(since: str | None, until: str | None, as_json: bool) -> None:
    """Revenue against GPU cost per tenant and model."""
    params = {"since": _since(since), "until": _since(until)}
    out = client().get("/admin/margin", params={k: v for k, v in params.items() if v})
    emit(out, as_json=as_json, columns=MARGIN_COLUMNS, title="gross margin")


@click.group()
def credits() -> None:
    """Free-tier and promotional credit, spent before anything is billed."""


@credits.command("grant")
@click.argument("tenant")
@click.argument("amount")
@click.option("--kind", type=click.Choice(["free_tier", "promo"]), default="promo")
@click.option("--note", default="")
@json_option
def credits_grant(tenant: str, amount: str, kind: str, note: str, as_json: bool) -> None:
    """Grant AMOUNT (dollars, e.g. 25.00) of credit to TENANT."""
    out = client().post(
        f"/admin/tenants/{tenant}/credits", json={"amount": amount, "kind": kind, "note": note}
    )
    emit(out, as_json=as_json, columns=("tenant_id", "kind", "amount", "balance"))


@credits.command("show")
@click.argument("tenant")
@json_option
def credits_show(tenant: str, as_json: bool) -> None:
    """TENANT's credit balance and grants."""
    out = client().get(f"/admin/tenants/{tenant}/credits")
    if as_json:
        emit(out, as_json=True)
        return
    click.echo(f"balance: {out['balance']}")
    emit(out["grants"], as_json=False, columns=("id", "kind", "amount", "note", "created_at"))


@click.group()
def billing() -> None:
    """Stripe billing."""


@billing.command("export")
@click.option("--hour", help="Export this hour only (ISO-8601, e.g. 2026-11-26T10:00Z).")
@json_option
def billing_export(hour: str | None, as_json: bool) -> None:
    """Aggregate usage and send due Stripe meter events now (safe to re-run)."""
    body = {"hour": hour.replace("Z", "+00:00")} if hour else {}
    out = client().post("/admin/billing/export", json=body, timeout=600)
    emit(out, as_json=as_json, columns=("sent", "failed", "hours", "skipped_tenants"))
