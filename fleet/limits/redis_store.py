"""The Redis counter store: every check of a request in one EVALSHA of ``limits.lua``.

One script, not a library: no rate-limit package reserves across several keys atomically and
refunds afterwards, and separate calls per layer would cost a round trip each and could leave
one layer charged when another refuses. The script is loaded once (at the first NOSCRIPT
answer) and loaded again whenever Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError, ResponseError

from fleet.limits.counters import Check, Figure, Verdict

SCRIPT = resources.files("fleet.limits").joinpath("limits.lua").read_text()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


def _bulk(value: Any) -> bytes:
    """One argument in Redis's wire protocol."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Batcher:
    """Sends the commands issued within one event-loop turn as one pipelined write on one
    pooled connection and hands each caller its own reply.

    Every command is still its own EVALSHA, so each request stays atomic; what is shared is
    the system calls and wake-ups, which under load cost more than the script itself. A
    batch in flight does not hold up the next one: that takes another connection.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._busy = 0

    async def call(self, packed: bytes) -> Any:
        """Send at once when nothing else is on the wire (no wait for a batch to form);
        otherwise join the batch that leaves at the end of this loop turn."""
        if not self._busy and not self._queue:
            self._busy += 1
            try:
                return await self._direct(packed)
            finally:
                self._busy -= 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((packed, future))
        return await future

    async def _direct(self, packed: bytes) -> Any:
        pool = self._redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed, check_health=False)
            return await conn.read_response()
        except ResponseError:
            raise
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            _RUNNING.add(task)
            task.add_done_callback(_RUNNING.discard)

    async def _run(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        self._busy += 1
        try:
            await self._send_batch(batch)
        finally:
            self._busy -= 1

    async def _send_batch(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        pool = self._redis.connection_pool
        try:
            conn = await pool.get_connection()
        except BaseException as exc:
            _fail(batch, exc)
            return
        try:
            await conn.send_packed_command(b"".join(p for p, _ in batch), check_health=False)
            for i, (_, future) in enumerate(batch):
                try:
                    reply = await conn.read_response()
                except ResponseError as exc:  # this command's error reply; the rest follow
                    if not future.done():
                        future.set_exception(exc)
                    continue
                except BaseException as exc:
                    await conn.disconnect()
                    _fail(batch[i:], exc)
                    return
                if not future.done():
                    future.set_result(reply)
        except BaseException as exc:
            await conn.disconnect()
            _fail(batch, exc)
        finally:
            await pool.release(conn)


_RUNNING: set[asyncio.Task[None]] = set()


def _fail(batch: list[tuple[bytes, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


class RedisCounterStore:
    """Counters under ``{prefix}:lim:``; ``redis`` is owned by the caller unless ``owns``."""

    def __init__(self, redis: Redis, *, prefix: str, owns: bool = False) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:lim:"
        self._owns = owns
        self._encoded: dict[int, tuple[Sequence[Check], bytes, bytes]] = {}
        self._batcher = Batcher(redis)

    @classmethod
    def from_url(cls, url: str, *, prefix: str, timeout: float = 2.0) -> RedisCounterStore:
        """A store with its own pool. A burst waits for one of its connections rather than
        failing (a full pool is not an outage); ``timeout`` bounds a Redis that hangs, and is
        generous because a busy event loop delays reads too, and a false outage would let
        the fail-open limits admit on top of Redis's."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=0,
        )
        return cls(Redis(connection_pool=pool), prefix=prefix, owns=True)

    def _keys_args(self, checks: Sequence[Check]) -> tuple[list[str], list[Any]]:
        keys = [self._prefix + c.counter for c in checks]
        args: list[Any] = []
        for c in checks:
            args += (c.kind.value, c.limit)
        return keys, args

    def _encoded_for(self, checks: Sequence[Check]) -> tuple[bytes, bytes]:
        """The wire form of ``EVALSHA sha n keys.. <5 per-call args> per-check args..`` around
        the per-call arguments, built once per checks tuple (the limiter reuses one tuple per
        caller and day): packing ~70 arguments per request costs more than the script runs."""
        found = self._encoded.get(id(checks))
        if found is not None and found[0] is checks:
            return found[1], found[2]
        keys, per_check = self._keys_args(checks)
        total = 3 + len(keys) + 5 + len(per_check)
        head = b"*%d\r\n" % total + b"".join(
            _bulk(a) for a in ("EVALSHA", SCRIPT_SHA, len(keys), *keys)
        )
        tail = b"".join(_bulk(a) for a in per_check)
        if len(self._encoded) > 10_000:
            self._encoded.clear()
        self._encoded[id(checks)] = (checks, head, tail)
        return head, tail

    async def _send(self, checks: Sequence[Check], call_args: tuple[Any, ...]) -> Any:
        """One EVALSHA, sent pre-packed through the batcher. NOSCRIPT loads the script and
        sends again."""
        head, tail = self._encoded_for(checks)
        packed = head + b"".join(_bulk(a) for a in call_args) + tail
        try:
            return await self._batcher.call(packed)
        except NoScriptError:
            await self._redis.script_load(SCRIPT)
            return await self._batcher.call(packed)

    async def reserve(
        self,
        checks: Sequence[Check],
        *,
        tokens: int,
        lease: str,
        now_ms: int,
        lease_until_ms: int,
    ) -> Verdict:
        out = await self._send(checks, ("reserve", now_ms, tokens, lease, lease_until_ms))
        rejected, retry_ms, ri, rr, rt, ti, tr, tt = out
        return Verdict(
            rejected - 1 if rejected else None,
            retry_ms,
            Figure(ri - 1, rr, rt) if ri else None,
            Figure(ti - 1, tr, tt) if ti else None,
        )

    async def settle(
        self, checks: Sequence[Check], *, delta_tokens: int, lease: str, now_ms: int
    ) -> None:
        await self._send(checks, ("settle", now_ms, delta_tokens, lease, 0))

    async def renew(
        self, leases: Sequence[tuple[str, Sequence[Check]]], *, now_ms: int, until_ms: int
    ) -> None:
        """All live leases in one pipelined round trip (off the request path)."""
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

    async def close(self) -> None:
        if self._owns:
            await self._redis.aclose(close_connection_pool=True)
