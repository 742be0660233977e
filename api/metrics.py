"""``GET /metrics``: the control plane's Prometheus exposition."""

from __future__ import annotations

from litestar import get
from litestar.datastructures import State
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST

from fleet import Services


@get("/metrics", tags=["ops"], include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Requests by model, endpoint and status; latency and TTFT; tokens; upstream errors."""
    services: Services = state.services
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
