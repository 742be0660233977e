"""How admin resources look on the wire. Hashes and tokens never appear here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleet.tables import ApiKey, AuditLog, Environment, Model, ModelPrice, Node, Tenant


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def tenant(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "plan": t.plan,
        "status": t.status,
        "created_at": _ts(t.created_at),
    }


def environment(e: Environment) -> dict[str, Any]:
    return {"id": e.id, "tenant_id": e.tenant_id, "name": e.name, "created_at": _ts(e.created_at)}


def api_key(k: ApiKey, *, environment_name: str | None = None) -> dict[str, Any]:
    out = {
        "id": k.id,
        "tenant_id": k.tenant_id,
        "environment_id": k.environment_id,
        "name": k.name,
        "prefix": k.prefix,
        "status": k.status,
        "expires_at": _ts(k.expires_at),
        "last_used_at": _ts(k.last_used_at),
        "created_at": _ts(k.created_at),
    }
    if environment_name is not None:
        out["environment"] = environment_name
    return out


def model(m: Model) -> dict[str, Any]:
    return {
        "name": m.name,
        "context_length": m.context_length,
        "default_max_tokens": m.default_max_tokens,
        "created_at": _ts(m.created_at),
    }


def price(p: ModelPrice) -> dict[str, Any]:
    return {
        "model": p.model,
        "region": p.region,
        "input_per_1m": str(p.input_per_1m),
        "output_per_1m": str(p.output_per_1m),
        "effective_from": _ts(p.effective_from),
    }


def node(n: Node) -> dict[str, Any]:
    return {
        "id": n.id,
        "model": n.model,
        "url": n.url,
        "state": n.state,
        "provider": n.provider,
        "region": n.region,
        "zone": n.zone,
        "spot": n.spot,
        "price_per_hour": str(n.price_per_hour),
        "created_at": _ts(n.created_at),
    }


def audit(a: AuditLog) -> dict[str, Any]:
    return {
        "id": a.id,
        "at": _ts(a.at),
        "actor": a.actor,
        "action": a.action,
        "target_type": a.target_type,
        "target_id": a.target_id,
        "detail": a.detail,
        "request_id": a.request_id,
    }
