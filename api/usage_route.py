"""``GET /v1/usage``: a tenant's own usage, for its API keys. The tenant is the key's, never a
parameter, so a key can only ever see its own tenant's figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fleet import InvalidRequest, Services
from fleet.billing.reports import GROUPINGS, credit_balance, usage_report, usage_rows_json


def parse_time(value: str, param: str) -> datetime:
    """ISO-8601 (``Z`` allowed) or epoch seconds; naive times are UTC."""
    try:
        at = (
            datetime.fromtimestamp(float(value), tz=UTC)
            if value.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError:
        raise InvalidRequest(
            f"{param} must be an ISO-8601 time or epoch seconds", param=param
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def tenant_usage(services: Services, tenant_id: str, query: bytes) -> dict[str, Any]:
    params = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
    by = params.get("by", "model")
    if by not in GROUPINGS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPINGS)}", param="by")
    since = parse_time(params["since"], "since") if "since" in params else None
    until = parse_time(params["until"], "until") if "until" in params else None
    rows = await usage_report(
        services.sessions, tenant_id=tenant_id, since=since, until=until, by=by
    )
    return {
        "object": "list",
        "tenant_id": tenant_id,
        "by": by,
        "data": usage_rows_json(rows),
        "credit_balance": str(await credit_balance(services.sessions, tenant_id)),
    }
