"""In-process change notifications between services.

Caches on the request path (resolved keys, routable nodes) must forget what an admin call just
changed without polling; the service that makes the change fires a :class:`Signal` and the
caches connected to it drop or refresh their copy.
"""

from __future__ import annotations

from collections.abc import Callable

from fleet.logs import get_logger

log = get_logger("cicfleet.signals")


class Signal:
    """A list of synchronous receivers called in order; one failing receiver never stops the
    others nor the change that fired it."""

    def __init__(self) -> None:
        self._receivers: list[Callable[[], None]] = []

    def connect(self, receiver: Callable[[], None]) -> None:
        self._receivers.append(receiver)

    def send(self) -> None:
        for receiver in self._receivers:
            try:
                receiver()
            except Exception:
                log.exception("signal receiver failed")
