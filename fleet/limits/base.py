"""The limiter interface.

The gateway calls ``acquire`` once per request before it picks a node (one round trip for all
layers) and ``release`` exactly once when the request ends, however it ends (success, error,
client disconnect), with the tokens really used so the reservation is corrected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fleet.keys import KeyInfo
from fleet.limits.counters import Check


@dataclass(frozen=True, slots=True)
class LimitRequest:
    key: KeyInfo
    model: str
    estimated_tokens: int  # prompt estimate + max_tokens (or the model's default cap)


@dataclass(slots=True)
class Admission:
    """A granted reservation; ``headers`` are OpenAI's ``x-ratelimit-*`` for the response.
    ``checks`` is what was reserved, so ``release`` corrects exactly those counters."""

    request: LimitRequest
    lease_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    released: bool = False


class Limiter(Protocol):
    async def acquire(self, request: LimitRequest) -> Admission:
        """Reserve a request, a concurrency slot and ``estimated_tokens`` on every layer, or
        raise ``RateLimited``/``QuotaExceeded`` having reserved nothing."""
        ...

    async def release(self, admission: Admission, *, used_tokens: int) -> None:
        """Free the concurrency slot and correct the token reservation to ``used_tokens``."""
        ...

    async def close(self) -> None: ...
