"""What one served request consumed, and where that record goes.

The gateway hands a :class:`UsageEvent` to a :class:`UsageSink` when a request ends. ``record``
returns once the event is as durable as the sink promises; the gateway awaits it before the final
chunk of a stream (or a non-streamed body) goes out, so a sink that makes events durable there
guarantees nothing delivered goes unbilled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UsageEvent:
    request_id: str
    tenant_id: str
    environment_id: str
    key_id: str
    model: str
    endpoint: str  # "chat.completions" | "completions" | "embeddings"
    stream: bool
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    created_at: float  # epoch seconds when the request arrived
    ttft_ms: float | None = None
    node_id: str | None = None
    region: str = "local"
    node_concurrency: int = 1  # requests the node served at once: this one's GPU-time share


class UsageSink(Protocol):
    async def record(self, event: UsageEvent) -> None:
        """Accept one event; must not do a database round trip per call on the hot path."""
        ...

    async def flush(self) -> None:
        """Write everything accepted so far (called periodically and at shutdown)."""
        ...

    async def close(self) -> None: ...
