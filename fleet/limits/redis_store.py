"""The Redis counter store: every check of a request in one EVALSHA of ``limits.lua``.

One script, not a library: no rate-limit package reserves across several keys atomically and
refunds afterwards, and separate calls per layer would cost a round trip each and could leave
one layer charged when another refuses. The script is loaded once (SCRIPT LOAD at the first
call) and loaded again when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from fleet.limits.counters import Check, Figure, Verdict

SCRIPT = resources.files("fleet.limits").joinpath("limits.lua").read_text()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class RedisCounterStore:
    """Counters under ``{prefix}:lim:``; ``redis`` is owned by the caller unless ``owns``."""

    def __init__(self, redis: Redis, *, prefix: str, owns: bool = False) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:lim:"
        self._owns = owns
        self._encoded: dict[int, tuple[Sequence[Check], list[str], list[Any]]] = {}

    @classmethod
    def from_url(cls, url: str, *, prefix: str, timeout: float = 0.5) -> RedisCounterStore:
        """A store with its own connection pool; short timeouts so a dead Redis is noticed
        quickly and the fallback takes over instead of requests hanging."""
        redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=0,
            max_connections=256,
        )
        return cls(redis, prefix=prefix, owns=True)

    async def _call(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._redis.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            await self._redis.script_load(SCRIPT)
            return await self._redis.evalsha(SCRIPT_SHA, len(keys), *keys, *args)

    def _keys_args(self, checks: Sequence[Check]) -> tuple[list[str], list[Any]]:
        """Keys and per-check arguments, remembered per checks tuple (the limiter reuses one
        tuple per caller and day, so a request mostly skips building them)."""
        found = self._encoded.get(id(checks))
        if found is not None and found[0] is checks:
            return found[1], found[2]
        keys = [self._prefix + c.counter for c in checks]
        args: list[Any] = []
        for c in checks:
            args += (c.kind.value, c.limit)
        if len(self._encoded) > 10_000:
            self._encoded.clear()
        self._encoded[id(checks)] = (checks, keys, args)
        return keys, args

    async def reserve(
        self,
        checks: Sequence[Check],
        *,
        tokens: int,
        lease: str,
        now_ms: int,
        lease_until_ms: int,
    ) -> Verdict:
        keys, per_check = self._keys_args(checks)
        out = await self._call(keys, ["reserve", now_ms, tokens, lease, lease_until_ms, *per_check])
        figures = tuple(Figure(int(out[i]), int(out[i + 1])) for i in range(2, len(out), 2))
        rejected = int(out[0])
        return Verdict(
            rejected=rejected - 1 if rejected else None, retry_ms=int(out[1]), figures=figures
        )

    async def settle(
        self, checks: Sequence[Check], *, delta_tokens: int, lease: str, now_ms: int
    ) -> None:
        keys, per_check = self._keys_args(checks)
        await self._call(keys, ["settle", now_ms, delta_tokens, lease, 0, *per_check])

    async def renew(
        self, leases: Sequence[tuple[str, Sequence[Check]]], *, now_ms: int, until_ms: int
    ) -> None:
        """All live leases in one pipelined round trip."""
        if not leases:
            return
        for attempt in (1, 2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for lease, checks in leases:
                    keys, per_check = self._keys_args(checks)
                    pipe.evalsha(
                        SCRIPT_SHA,
                        len(keys),
                        *keys,
                        "renew",
                        now_ms,
                        until_ms,
                        lease,
                        0,
                        *per_check,
                    )
                try:
                    await pipe.execute()
                    return
                except NoScriptError:
                    if attempt == 2:
                        raise
                    await self._redis.script_load(SCRIPT)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._owns:
            await self._redis.aclose()
