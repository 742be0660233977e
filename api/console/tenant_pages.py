"""A tenant's pages: environments and keys, limits and how close usage is to them, credits,
and usage by day, model and key. Operators may open any tenant's pages; a tenant only its own."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.console.charts import Bar, bar_chart
from api.console.session import (
    Forbidden,
    check_csrf,
    context,
    services,
    signed_in,
)
from fleet.billing.reports import UsageRow, credit_balance, usage_report
from fleet.clock import utcnow
from fleet.console_auth import SignedIn
from fleet.errors import NotFound
from fleet.limits import Layer
from fleet.limits.service import Target
from fleet.tables import Tenant

CHART_DAYS = 14
MAX_KEY_LIMITS = 50


def actor_of(who: SignedIn) -> str:
    return "console:admin" if who.operator else f"console:{who.tenant_id}"


async def _tenant(request: Request[Any, Any, Any], ref: str) -> tuple[SignedIn, Tenant]:
    """The signed-in caller and the tenant of the page, refusing other tenants' pages before
    even looking the tenant up (so a tenant cannot probe which ids exist)."""
    who = await signed_in(request)
    if not who.operator and ref != who.tenant_id:
        raise Forbidden(detail="this page belongs to another tenant")
    tenant = await services(request.app.state).tenancy.get_tenant(ref)
    if not who.may_see(tenant.id):
        raise Forbidden(detail="this page belongs to another tenant")
    return who, tenant


def _total(rows: list[UsageRow]) -> UsageRow:
    return UsageRow(
        "total",
        sum(r.requests for r in rows),
        sum(r.prompt_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum((r.cost for r in rows), Decimal(0)),
    )


def money(value: Decimal) -> str:
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


FIGURES = ("rpm", "tpm", "rpd", "tpd", "concurrency")


def _used(minute: list[UsageRow], today: list[UsageRow]) -> dict[str, int]:
    m, d = _total(minute), _total(today)
    return {
        "rpm": m.requests,
        "tpm": m.prompt_tokens + m.completion_tokens,
        "rpd": d.requests,
        "tpd": d.prompt_tokens + d.completion_tokens,
    }


def _rows(figures: dict[str, int | None], used: dict[str, int] | None) -> list[dict[str, Any]]:
    rows = []
    for name in FIGURES:
        limit = figures.get(name)
        value = None if used is None else used.get(name)
        share = None if not limit or value is None else min(1.0, value / limit)
        rows.append({"name": name, "limit": limit, "used": value, "share": share})
    return rows


async def _limits(state: State, tenant: Tenant, keys: list[Any], now: datetime) -> dict[str, Any]:
    """What applies at each layer, and what was used against it: the last minute for
    per-minute figures, today (UTC) for per-day ones. Usage is read from the billed records,
    so it lags the limiter by the usage flush interval; concurrency is not recorded there."""
    svc = services(state)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    minute = await usage_report(
        svc.sessions, tenant_id=tenant.id, since=now - timedelta(minutes=1), by="key"
    )
    today = await usage_report(svc.sessions, tenant_id=tenant.id, since=midnight, by="key")
    minute_of = {r.group: r for r in minute}
    today_of = {r.group: r for r in today}

    def used_by(key_ids: set[str]) -> dict[str, int]:
        return _used(
            [r for r in minute if r.group in key_ids], [r for r in today if r.group in key_ids]
        )

    views = await svc.limits.show(Target(Layer.TENANT, tenant.id, tenant.name, tenant.plan))
    layers = [
        {
            "layer": v.target.layer.value,
            "label": v.target.label,
            # the global layer counts every tenant: this tenant's usage says nothing there
            "rows": _rows(
                v.effective.as_dict(),
                used_by({k.id for k in keys}) if v.target.layer is Layer.TENANT else None,
            ),
        }
        for v in views
    ]
    for env in await svc.tenancy.list_environments(tenant.id):
        target = Target(Layer.ENVIRONMENT, env.id, f"{tenant.name}/{env.name}", tenant.plan)
        view = (await svc.limits.show(target))[-1]
        mine = {k.id for k in keys if k.environment_id == env.id}
        layers.append(
            {
                "layer": "environment",
                "label": view.target.label,
                "rows": _rows(view.effective.as_dict(), used_by(mine)),
            }
        )
    per_key = {}
    # Each key's chain is a few primary-key reads; a page refreshed every few seconds shows
    # them for the newest active keys only.
    for k in [k for k in reversed(keys) if k.status == "active"][:MAX_KEY_LIMITS]:
        view = (await svc.limits.show(Target(Layer.KEY, k.id, k.id, tenant.plan)))[-1]
        one = _used(
            [minute_of[k.id]] if k.id in minute_of else [],
            [today_of[k.id]] if k.id in today_of else [],
        )
        per_key[k.id] = _rows(view.effective.as_dict(), one)
    return {"layers": layers, "per_key": per_key}


async def _usage(state: State, tenant: Tenant, now: datetime) -> dict[str, Any]:
    svc = services(state)
    first = (now - timedelta(days=CHART_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    by_day = {
        r.group[:10]: r
        for r in await usage_report(svc.sessions, tenant_id=tenant.id, since=first, by="day")
    }
    days = [(first + timedelta(days=i)).date().isoformat() for i in range(CHART_DAYS)]
    empty = UsageRow("", 0, 0, 0, Decimal(0))
    series = [by_day.get(d, empty) for d in days]
    labels = [d[5:] for d in days]  # MM-DD
    tokens = [r.prompt_tokens + r.completion_tokens for r in series]
    by_model = await usage_report(svc.sessions, tenant_id=tenant.id, since=first, by="model")
    by_key = await usage_report(svc.sessions, tenant_id=tenant.id, since=first, by="key")
    keys = {k.id: k for k in await svc.tenancy.list_keys(tenant.id)}
    return {
        "days": list(zip(days, series, strict=True)),
        "total": _total(series),
        "charts": [
            bar_chart(
                f"Requests per day, last {CHART_DAYS} days",
                [
                    Bar(lbl, r.requests, f"{r.requests:,}")
                    for lbl, r in zip(labels, series, strict=True)
                ],
            ),
            bar_chart(
                f"Tokens per day, last {CHART_DAYS} days",
                [Bar(lbl, t, f"{t:,}") for lbl, t in zip(labels, tokens, strict=True)],
            ),
            bar_chart(
                f"Cost per day, last {CHART_DAYS} days",
                [
                    Bar(lbl, float(r.cost), money(r.cost))
                    for lbl, r in zip(labels, series, strict=True)
                ],
            ),
        ],
        "by_model": by_model,
        "by_key": [(keys.get(r.group), r) for r in by_key],
        "model_chart": bar_chart(
            f"Tokens by model, last {CHART_DAYS} days",
            [Bar(r.group, _tokens(r), f"{_tokens(r):,}") for r in by_model],
        ),
        "key_chart": bar_chart(
            f"Tokens by key, last {CHART_DAYS} days",
            [
                Bar(_key_label(keys.get(r.group), r.group), _tokens(r), f"{_tokens(r):,}")
                for r in by_key
            ],
        ),
    }


def _tokens(row: UsageRow) -> int:
    return row.prompt_tokens + row.completion_tokens


def _key_label(key: Any, key_id: str) -> str:
    return (key.name or key.prefix) if key is not None else key_id


async def _usage_page(
    request: Request[Any, Any, Any], state: State, tenant_id: str, template: str
) -> Template:
    """The usage page, whole or only its live part (the same figures either way)."""
    who, tenant = await _tenant(request, tenant_id)
    now = utcnow(services(state).clock)
    return Template(
        template_name=template,
        context=context(
            request,
            who,
            tenant=tenant,
            live_url=f"/console/t/{tenant.id}/usage/live",
            money=money,
            **await _usage(state, tenant, now),
        ),
    )


class TenantPages(Controller):
    path = "/t/{tenant_id:str}"
    include_in_schema = False

    @get("/")
    async def overview(
        self, request: Request[Any, Any, Any], state: State, tenant_id: FromPath[str]
    ) -> Template:
        who, tenant = await _tenant(request, tenant_id)
        return Template(
            template_name="tenant.html",
            context=context(request, who, **await self._overview(state, tenant)),
        )

    @get("/live")
    async def overview_live(
        self, request: Request[Any, Any, Any], state: State, tenant_id: FromPath[str]
    ) -> Template:
        who, tenant = await _tenant(request, tenant_id)
        return Template(
            template_name="_tenant_live.html",
            context=context(request, who, **await self._overview(state, tenant)),
        )

    async def _overview(self, state: State, tenant: Tenant) -> dict[str, Any]:
        svc = services(state)
        now = utcnow(svc.clock)
        envs = list(await svc.tenancy.list_environments(tenant.id))
        names = {e.id: e.name for e in envs}
        keys = list(await svc.tenancy.list_keys(tenant.id))
        return {
            "tenant": tenant,
            "environments": envs,
            "keys": [(k, names.get(k.environment_id, "?")) for k in reversed(keys)],
            "credits": money(await credit_balance(svc.sessions, tenant.id)),
            **await _limits(state, tenant, keys, now),
            "live_url": f"/console/t/{tenant.id}/live",
        }

    @post("/keys", status_code=200)
    async def create_key(
        self, request: Request[Any, Any, Any], state: State, tenant_id: FromPath[str]
    ) -> Template:
        """Create a key and show its plaintext this one time."""
        who, tenant = await _tenant(request, tenant_id)
        form = dict(await request.form())
        check_csrf(request, who, form)
        key, plaintext = await services(state).tenancy.create_key(
            tenant.id,
            environment=str(form.get("environment") or "prod"),
            name=str(form.get("name") or "")[:128],
            actor=actor_of(who),
        )
        return Template(
            template_name="key_created.html",
            context=context(
                request,
                who,
                tenant=tenant,
                key=key,
                plaintext=plaintext,
                base_url=str(request.base_url).rstrip("/") + "/v1",
            ),
            headers={"cache-control": "no-store"},
        )

    @post("/keys/{key_id:str}/revoke", status_code=303)
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        state: State,
        tenant_id: FromPath[str],
        key_id: FromPath[str],
    ) -> Redirect:
        who, tenant = await _tenant(request, tenant_id)
        check_csrf(request, who, dict(await request.form()))
        tenancy = services(state).tenancy
        if key_id not in {k.id for k in await tenancy.list_keys(tenant.id)}:
            raise NotFound(f"key {key_id!r} not found", param="key_id")
        await tenancy.revoke_key(key_id, actor=actor_of(who))
        return Redirect(f"/console/t/{tenant.id}", status_code=303)

    @post("/environments", status_code=303)
    async def create_environment(
        self, request: Request[Any, Any, Any], state: State, tenant_id: FromPath[str]
    ) -> Redirect:
        who, tenant = await _tenant(request, tenant_id)
        form = dict(await request.form())
        check_csrf(request, who, form)
        await services(state).tenancy.create_environment(
            tenant.id, str(form.get("name") or ""), actor=actor_of(who)
        )
        return Redirect(f"/console/t/{tenant.id}", status_code=303)

    @get("/usage")
    async def usage(
        self, request: Request[Any, Any, Any], state: State, tenant_id: FromPath[str]
    ) -> Template:
        return await _usage_page(request, state, tenant_id, "usage.html")

    @get("/usage/live")
    async def usage_live(
        self, request: Request[Any, Any, Any], state: State, tenant_id: FromPath[str]
    ) -> Template:
        return await _usage_page(request, state, tenant_id, "_usage_live.html")
