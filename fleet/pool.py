"""The gateway's view of routable nodes, and the one place that picks a node per request.

The view is the registry's in-memory node table (fresh from heartbeats in this process, and
reloaded from the database every ``refresh_seconds`` so nodes registered, drained or added
by another replica or the admin API show up within about a second); the choice is the
model pool's routing strategy (:mod:`fleet.routing`), over candidates that are ready,
healthy and not ejected, preferring this replica's region. The gateway counts its requests
in flight on the node objects it gets (``node.in_flight``) and reports each outcome with
:meth:`NodePool.report`, which feeds outlier ejection.
"""

from __future__ import annotations

from collections.abc import Collection

from fleet.errors import NoCapacity
from fleet.periodic import Periodic
from fleet.registry import NodeView, Registry
from fleet.routing import Router


class NodePool:
    """Routable nodes per model over the registry, refreshed in the background."""

    def __init__(
        self,
        registry: Registry,
        router: Router,
        *,
        refresh_seconds: float = 1.0,
        region: str | None = None,
    ) -> None:
        self._registry = registry
        self._router = router
        self._region = region
        self._refresher = Periodic("node pool refresh", self.refresh, seconds=refresh_seconds)

    # -- request path ----------------------------------------------------------------------
    def nodes(self, model: str) -> tuple[NodeView, ...]:
        return self._router.candidates(model).everywhere

    def pick(self, model: str, exclude: Collection[str] = ()) -> NodeView | None:
        """The node to send the next request for ``model`` to, or None when none is left."""
        try:
            return self._router.pick(model, region=self._region, exclude=exclude)
        except NoCapacity:
            return None

    def report(self, node: NodeView, *, ok: bool) -> None:
        """The outcome of a request on ``node`` (``ok=False``: connect error or 5xx)."""
        self._router.report(node, ok=ok)

    # -- refresh ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Reload the view from the database, keeping in-flight counts of nodes that stay."""
        await self._registry.refresh()

    def refresh_soon(self) -> None:
        """Reload now instead of at the next interval (called after a local change)."""
        self._refresher.wake()

    async def start(self) -> None:
        await self.refresh()
        self._refresher.start()

    async def close(self) -> None:
        await self._refresher.close()
