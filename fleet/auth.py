"""API key authentication for the gateway.

A request's ``Authorization: Bearer <key>`` is hashed (SHA-256, as stored) and looked up in an
in-process cache of resolved keys; a miss asks :meth:`TenancyService.resolve` (one indexed
query) and caches the answer for ``CIC_KEY_CACHE_SECONDS``. Only positive answers are cached.

Revocation must bite within a second on every replica, far sooner than the TTL: the local
:class:`TenancyService` fires ``changed`` after revoking a key or changing a tenant, which
clears this cache, and with Redis configured the same clearing is broadcast to every replica
on the ``<CIC_REDIS_PREFIX>:auth:invalidate`` channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fleet.clock import Clock
from fleet.errors import AuthenticationFailed, TenantSuspended
from fleet.keys import KeyInfo, hash_key
from fleet.logs import get_logger
from fleet.periodic import Periodic
from fleet.tables import TenantStatus
from fleet.tenancy import TenancyService

log = get_logger("cicfleet.auth")

_BEARER = "bearer "


def invalidation_channel(redis_prefix: str) -> str:
    return f"{redis_prefix}:auth:invalidate"


class KeyAuth:
    """Resolve bearer keys to callers, cached, with cluster-wide invalidation."""

    def __init__(
        self,
        tenancy: TenancyService,
        *,
        clock: Clock,
        ttl_seconds: float,
        redis: Any | None = None,
        channel: str = "cic:auth:invalidate",
    ) -> None:
        self._tenancy = tenancy
        self._clock = clock
        self._ttl = ttl_seconds
        self._redis = redis
        self._channel = channel
        self._cache: dict[str, tuple[KeyInfo, float]] = {}
        self._pending: dict[str, asyncio.Future[KeyInfo | None]] = {}
        self._generation = 0
        self._listener: asyncio.Task[None] | None = None
        self._publishes: set[asyncio.Task[Any]] = set()
        self._used: set[str] = set()
        self._use_writer = Periodic("key last-use writes", self.write_key_uses, seconds=30.0)
        tenancy.changed.connect(self._local_change)

    async def authenticate(self, authorization: str | None) -> KeyInfo:
        """The caller behind an ``Authorization`` header value, or raise.

        Raises ``AuthenticationFailed`` (401) for a missing, unknown, revoked or expired key and
        ``TenantSuspended`` (403) when the key is fine but its tenant is suspended.
        """
        if not authorization or authorization[:7].lower() != _BEARER:
            raise AuthenticationFailed(
                "Missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        key_hash = hash_key(authorization[7:].strip())
        entry = self._cache.get(key_hash)
        if entry is not None and entry[1] > self._clock.monotonic():
            info = entry[0]
        else:
            found = await self._resolve(key_hash)
            if found is None:
                raise AuthenticationFailed("Incorrect API key provided", code="invalid_api_key")
            info = found
        if info.expires_at is not None and info.expires_at <= self._clock.now():
            raise AuthenticationFailed("The API key has expired", code="invalid_api_key")
        if info.tenant_status != TenantStatus.ACTIVE:
            raise TenantSuspended("The tenant of this API key is suspended")
        self._used.add(info.key_id)
        return info

    async def write_key_uses(self) -> None:
        """Stamp ``last_used_at`` on the keys used since the last write (to within the 30 s
        period): one statement, off the request path. A failed write keeps the keys for the
        next one."""
        used, self._used = self._used, set()
        try:
            await self._tenancy.mark_keys_used(used)
        except Exception:
            self._used |= used
            raise

    async def _resolve(self, key_hash: str) -> KeyInfo | None:
        """One database lookup per key however many requests miss at once."""
        pending = self._pending.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyInfo | None] = asyncio.get_running_loop().create_future()
        self._pending[key_hash] = future
        generation = self._generation
        try:
            info = await self._tenancy.resolve(key_hash)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: with no other waiter nobody else reads it
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[key_hash]
        if info is not None and generation == self._generation:
            self._cache[key_hash] = (info, self._clock.monotonic() + self._ttl)
        future.set_result(info)
        return info

    def invalidate(self) -> None:
        """Forget every cached key on this replica (the next request per key re-resolves)."""
        self._generation += 1
        self._cache.clear()

    def _local_change(self) -> None:
        self.invalidate()
        if self._redis is not None:
            task = asyncio.get_running_loop().create_task(self._publish())
            self._publishes.add(task)
            task.add_done_callback(self._publishes.discard)

    async def _publish(self) -> None:
        try:
            await self._redis.publish(self._channel, b"*")  # type: ignore[union-attr]
        except Exception as exc:
            log.warning("auth invalidation not broadcast", extra={"error": type(exc).__name__})

    # -- lifecycle (Redis listener) --------------------------------------------------------
    async def start(self) -> None:
        """Write key uses periodically, and listen for invalidations from other replicas."""
        self._use_writer.start()
        if self._redis is not None and self._listener is None:
            ready = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(ready))
            await asyncio.wait([ready, self._listener], return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        await self._use_writer.close(final_call=True)
        if self._publishes:
            await asyncio.gather(*self._publishes, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub()  # type: ignore[union-attr]
            try:
                await pubsub.subscribe(self._channel)
                # Messages may have been missed while we were not subscribed.
                self.invalidate()
                if not ready.done():
                    ready.set_result(None)
                backoff = 0.1
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None:
                        self.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("auth invalidation listener lost", extra={"error": type(exc).__name__})
                if not ready.done():
                    ready.set_result(None)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
