"""Liveness and readiness probes."""

from __future__ import annotations

from litestar import get
from litestar.datastructures import State
from litestar.response import Response

from fleet import Services
from fleet.db import ping


@get("/health", sync_to_thread=False, include_in_schema=True, tags=["ops"])
def health() -> dict[str, str]:
    """Liveness: the process answers. Never touches a dependency."""
    return {"status": "ok"}


@get("/ready", tags=["ops"])
async def ready(state: State) -> Response[dict[str, object]]:
    """Readiness: the database (and Redis when configured) answer."""
    services: Services = state.services
    checks: dict[str, str] = {}
    try:
        await ping(services.engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return Response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
