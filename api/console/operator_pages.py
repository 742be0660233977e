"""Operator pages: the fleet by model pool and region, autoscaler targets and decisions, node
detail, drain and scale, tenants (suspend, restore, login links), revenue against GPU cost.
They call the same fleet services as ``/admin``; nothing here decides anything itself."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.console.charts import Bar, bar_chart
from api.console.session import check_csrf, console_auth, context, operator, services
from api.console.tenant_pages import money
from api.node_api import fleet_of
from fleet import TenantStatus
from fleet.audit import recent
from fleet.billing.reports import margin_report
from fleet.clock import utcnow
from fleet.errors import InvalidRequest, NotFound
from fleet.node_timeline import NodeTimeline
from fleet.registry import view_of
from fleet.scaling import ScalingService
from fleet.scaling_decisions import recent_decisions

ACTOR = "console:admin"
LIVE_STATES = ("launching", "registering", "ready", "unhealthy", "draining")
REVENUE_DAYS = 30


def _groups(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes per (model pool, region): counts by state, spot vs on-demand, load, price/h."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for n in nodes:
        groups[(n["model"], n["region"])].append(n)
    out = []
    for (model, region), mine in sorted(groups.items()):
        live = [n for n in mine if n["state"] != "terminated"]
        out.append(
            {
                "model": model,
                "region": region,
                "states": Counter(n["state"] for n in mine),
                "spot": sum(1 for n in live if n["spot"]),
                "on_demand": sum(1 for n in live if not n["spot"]),
                "running": sum(n["running"] for n in live),
                "waiting": sum(n["waiting"] for n in live),
                "in_flight": sum(n["in_flight"] for n in live),
                "price": money(sum((Decimal(n["price_per_hour"]) for n in live), Decimal(0))),
            }
        )
    return out


async def _fleet(state: State) -> dict[str, Any]:
    svc = services(state)
    status = await fleet_of(state).pools.status()
    nodes = status["nodes"]
    return {
        "pools": status["pools"],
        "groups": _groups(nodes),
        "nodes": nodes,
        "states": LIVE_STATES,
        "scaling": list(await ScalingService(svc.sessions).list()),
        "decisions": list(await recent_decisions(svc.sessions, limit=20)),
        "live_url": "/console/fleet/live",
    }


async def _node(state: State, node_id: str) -> dict[str, Any]:
    """The node as the registry holds it (or its stored row once the registry forgot it, after
    termination), its recent heartbeats and events, and what operators did to it."""
    svc = services(state)
    fleet = fleet_of(state)
    now, mono = svc.clock.now(), svc.clock.monotonic()
    await fleet.registry.refresh()
    view = fleet.registry.nodes.get(node_id)
    if view is None:
        rows = [n for n in await svc.nodes.list(include_terminated=True) if n.id == node_id]
        if not rows:
            raise NotFound(f"node {node_id!r} not found", param="node")
        view = view_of(rows[0])
    node = view.as_dict(now, mono)
    node["drain_deadline_s"] = (
        None if view.drain_deadline is None else round(view.drain_deadline - now, 1)
    )
    node["failures"] = view.failures
    timeline: NodeTimeline | None = getattr(state, "node_timeline", None)
    beats = timeline.beats(node_id) if timeline else []
    events: list[dict[str, Any]] = [
        {"at": e.at, "kind": e.kind, "detail": e.detail}
        for e in (timeline.events(node_id) if timeline else [])
    ]
    events += [
        {"at": a.at.timestamp(), "kind": "operator", "detail": f"{a.action} by {a.actor}"}
        for a in await recent(svc.sessions, limit=500)
        if a.target_id == node_id
    ]
    events.sort(key=lambda e: e["at"], reverse=True)
    chart = bar_chart(
        "Running requests at each heartbeat",
        [Bar(f"-{round(now - b.at)}s", b.running, str(b.running)) for b in beats[-30:]],
    )
    return {
        "node": node,
        "events": [{**e, "ago": round(now - e["at"], 1)} for e in events[:30]],
        "beats": [
            {
                "ago": round(now - b.at, 1),
                "running": b.running,
                "waiting": b.waiting,
                "kv": round(b.kv_cache * 100),
                "healthy": b.healthy,
            }
            for b in reversed(beats[-10:])
        ],
        "beat_chart": chart if beats else None,
        "heartbeat_interval": svc.settings.heartbeat_interval,
        "unhealthy_after": svc.settings.unhealthy_after_beats,
        "live_url": f"/console/fleet/nodes/{node_id}/live",
    }


async def _revenue(state: State) -> dict[str, Any]:
    svc = services(state)
    since = utcnow(svc.clock) - timedelta(days=REVENUE_DAYS)
    rows = await margin_report(svc.sessions, since=since)
    names = {t.id: t.name for t in await svc.tenancy.list_tenants(include_deleted=True)}
    status = await fleet_of(state).pools.status()
    burn = sum(
        (Decimal(n["price_per_hour"]) for n in status["nodes"] if n["state"] != "terminated"),
        Decimal(0),
    )
    return {
        "rows": [(names.get(r.tenant_id, r.tenant_id), r) for r in rows],
        "revenue": sum((r.revenue for r in rows), Decimal(0)),
        "gpu_cost": sum((r.gpu_cost for r in rows), Decimal(0)),
        "margin": sum((r.margin for r in rows), Decimal(0)),
        "burn": burn,
        "days": REVENUE_DAYS,
        "money": money,
    }


class OperatorPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/fleet")
    async def fleet(self, request: Request[Any, Any, Any], state: State) -> Template:
        who = await operator(request)
        return Template(
            template_name="fleet.html", context=context(request, who, **await _fleet(state))
        )

    @get("/fleet/live")
    async def fleet_live(self, request: Request[Any, Any, Any], state: State) -> Template:
        who = await operator(request)
        return Template(
            template_name="_fleet_live.html", context=context(request, who, **await _fleet(state))
        )

    @get("/fleet/nodes/{node_id:str}")
    async def node(
        self, request: Request[Any, Any, Any], state: State, node_id: FromPath[str]
    ) -> Template:
        who = await operator(request)
        return Template(
            template_name="node.html", context=context(request, who, **await _node(state, node_id))
        )

    @get("/fleet/nodes/{node_id:str}/live")
    async def node_live(
        self, request: Request[Any, Any, Any], state: State, node_id: FromPath[str]
    ) -> Template:
        who = await operator(request)
        return Template(
            template_name="_node_live.html",
            context=context(request, who, **await _node(state, node_id)),
        )

    @post("/fleet/nodes/{node_id:str}/drain", status_code=303)
    async def drain(
        self, request: Request[Any, Any, Any], state: State, node_id: FromPath[str]
    ) -> Redirect:
        who = await operator(request)
        form = dict(await request.form())
        check_csrf(request, who, form)
        await fleet_of(state).pools.drain(node_id, actor=ACTOR)
        back = str(form.get("back") or "")
        return Redirect(back if back.startswith("/console/") else "/console/fleet", status_code=303)

    @post("/fleet/pools/scale", status_code=303)
    async def scale(self, request: Request[Any, Any, Any], state: State) -> Redirect:
        who = await operator(request)
        form = dict(await request.form())
        check_csrf(request, who, form)
        try:
            replicas = int(str(form.get("replicas", "")))
        except ValueError:
            raise InvalidRequest("replicas must be a whole number", param="replicas") from None
        await fleet_of(state).pools.scale(str(form.get("model", "")), replicas, actor=ACTOR)
        return Redirect("/console/fleet", status_code=303)

    @get("/tenants")
    async def tenants(self, request: Request[Any, Any, Any], state: State) -> Template:
        who = await operator(request)
        rows = await services(state).tenancy.list_tenants()
        return Template(
            template_name="tenants.html", context=context(request, who, tenants=rows, link=None)
        )

    @post("/tenants/{tenant_id:str}/{action:str}", status_code=303)
    async def tenant_action(
        self,
        request: Request[Any, Any, Any],
        state: State,
        tenant_id: FromPath[str],
        action: FromPath[str],
    ) -> Redirect | Template:
        who = await operator(request)
        check_csrf(request, who, dict(await request.form()))
        tenancy = services(state).tenancy
        if action == "suspend":
            await tenancy.set_tenant_status(tenant_id, TenantStatus.SUSPENDED, actor=ACTOR)
        elif action == "restore":
            await tenancy.set_tenant_status(tenant_id, TenantStatus.ACTIVE, actor=ACTOR)
        elif action == "login-link":
            link = await console_auth(state).login_link(tenant_id, actor=ACTOR)
            url = str(request.base_url).rstrip("/") + f"/console/login/link/{link.token}"
            rows = await tenancy.list_tenants()
            return Template(
                template_name="tenants.html",
                context=context(
                    request,
                    who,
                    tenants=rows,
                    link={"tenant_id": link.tenant_id, "url": url, "expires_at": link.expires_at},
                ),
                status_code=200,
                headers={"cache-control": "no-store"},
            )
        else:
            raise InvalidRequest(f"unknown action {action!r}", param="action")
        return Redirect("/console/tenants", status_code=303)

    @get("/revenue")
    async def revenue(self, request: Request[Any, Any, Any], state: State) -> Template:
        who = await operator(request)
        return Template(
            template_name="revenue.html", context=context(request, who, **await _revenue(state))
        )
