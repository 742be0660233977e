"""Requests that arrive while a pool has no ready node wait for the first one.

A pool scaled to zero (or emptied by preemptions) gets a node in a minute or two. Rather than
answering 503 at once, as SkyServe does, the gateway parks the request here: at most
``max_waiting`` requests per model, each for at most ``timeout`` seconds. Beyond either bound
it raises :class:`NoCapacity` (503 with ``Retry-After``). The number waiting is what the
autoscaler reads as demand for a pool with no node, so the first waiter triggers the launch.
"""

from __future__ import annotations

from collections.abc import Callable

from fleet.clock import SYSTEM_CLOCK, Clock
from fleet.errors import NoCapacity


class FirstNodeWaiter:
    """Bounded waiting room per model; a waiter leaves as soon as ``has_node(model)`` is true
    (checked every ``poll`` seconds against the gateway's in-memory view: no I/O)."""

    def __init__(
        self,
        *,
        max_waiting: int = 256,
        timeout: float = 120.0,
        retry_after: float = 30.0,
        poll: float = 0.2,
        clock: Clock = SYSTEM_CLOCK,
        has_node: Callable[[str], bool] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self._max = max_waiting
        self._timeout = timeout
        self._retry_after = retry_after
        self._poll = poll
        self._clock = clock
        self._has_node = has_node or (lambda model: False)
        self._on_wait = on_wait
        self._waiting: dict[str, int] = {}
        self._scalable: set[str] = set()

    def expect(self, models: set[str]) -> None:
        """The models whose pools can bring a node up (autoscaled, max replicas > 0): only
        their requests wait; a model nobody will launch a node for is answered 503 at once."""
        self._scalable = set(models)

    def expects(self, model: str) -> bool:
        return model in self._scalable

    def waiting(self, model: str) -> int:
        return self._waiting.get(model, 0)

    async def wait(self, model: str) -> None:
        """Return when a node of ``model`` is ready; raise :class:`NoCapacity` when the room is
        full or the wait times out."""
        if self.waiting(model) >= self._max:
            raise NoCapacity(
                f"no node serves {model} yet and {self._max} requests are already waiting",
                retry_after=self._retry_after,
            )
        self._waiting[model] = self.waiting(model) + 1
        if self._on_wait is not None:
            self._on_wait(model)
        deadline = self._clock.monotonic() + self._timeout
        try:
            while not self._has_node(model):
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    raise NoCapacity(
                        f"no node of {model} became ready within {self._timeout:.0f} s",
                        retry_after=self._retry_after,
                    )
                await self._clock.sleep(min(self._poll, left))
        finally:
            self._waiting[model] -= 1
            if not self._waiting[model]:
                del self._waiting[model]
