"""``GET /metrics``: the control plane's Prometheus exposition."""

from __future__ import annotations

from litestar import get
from litestar.datastructures import State
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST

from fleet import Services, get_logger
from fleet.fleet_metrics import FleetCollector

log = get_logger("cicfleet.metrics")


@get("/metrics", tags=["ops"], include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Requests by model, endpoint and status; latency and TTFT; tokens; upstream errors;
    limit refusals; the fleet's nodes, cost and targets; whether this replica leads."""
    services: Services = state.services
    fleet: FleetCollector | None = state.get("fleet_metrics")
    if fleet is not None:
        try:
            await fleet.refresh()
        except Exception as exc:  # a database hiccup must not cost the gateway's figures
            log.warning("reading pool targets failed", extra={"error": str(exc)[:300]})
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
