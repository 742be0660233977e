"""What the limiter costs, measured against a baseline in the same run.

1. Added latency per request, all four layers limited on all five figures (20 checks in one
   EVALSHA), against the Redis on loopback; baselines: a bare Redis PING from the same client
   library (one round trip doing nothing) and the in-process store. p50/p99 of ``acquire``
   (what a request waits before it is forwarded) and ``release`` (after the response: costs
   throughput, not latency), and acquire+release per second with 32 concurrent callers.
2. With ``--gateway``: requests per second through a real ``cicfleet serve`` (Redis limits, a
   simulated node) with limits off (no layer limits the key) and on (all four layers), in
   alternating phases so both see the same machine load.

    .venv/bin/python bench/limiter.py [--redis URL] [-n 5000] [--gateway] [--seconds 5]

The machine is shared: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from fleet import build_services, hash_key, load_settings
from fleet.limits import LimitRequest


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


async def timed(n: int, fn) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


async def run(redis_url: str | None, n: int, home: Path) -> dict[str, float]:
    prefix = f"bench:{secrets.token_hex(4)}"
    settings = load_settings(
        home=home,
        database_url=f"sqlite+aiosqlite:///{home / f'{prefix[-8:]}.db'}",
        redis_url=redis_url,
        redis_prefix=prefix,
    )
    big = {"rpm": 10**8, "tpm": 10**11, "rpd": 10**9, "tpd": 10**12, "concurrency": 10**6}
    async with build_services(settings, migrate=True) as svc:
        await svc.tenancy.create_tenant("bench", plan="pro", actor="bench")
        key, plaintext = await svc.tenancy.create_key("bench", actor="bench")
        info = await svc.tenancy.resolve(hash_key(plaintext))
        limits = svc.limits
        for target in (
            await limits.target(global_=True),
            await limits.target(tenant="bench"),
            await limits.target(tenant="bench", environment="prod"),
            await limits.target(key=key.id),
        ):
            await limits.set_override(target, big, actor="bench")
        limiter = svc.limiter
        req = LimitRequest(key=info, model="m", estimated_tokens=500)
        held = []

        async def acquire() -> None:
            held.append(await limiter.acquire(req))

        async def release() -> None:
            await limiter.release(held.pop(), used_tokens=300)

        assert len((await limiter.acquire(req)).checks) == 20
        await timed(200, acquire)
        await timed(200, release)
        acq, rel = [], []
        for _ in range(n // 100):  # interleave so both see the same machine load
            acq += await timed(100, acquire)
            rel += await timed(100, release)

        async def worker(count: int) -> None:
            for _ in range(count):
                adm = await limiter.acquire(req)
                await limiter.release(adm, used_tokens=300)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n // 32) for _ in range(32)))
        rate = (n // 32) * 32 / (time.perf_counter() - t0)
        if redis_url:
            raw = Redis.from_url(redis_url)
            keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
            if keys:
                await raw.delete(*keys)
            await raw.aclose()
    return {
        "acquire_p50": pct(acq, 0.5),
        "acquire_p99": pct(acq, 0.99),
        "release_p50": pct(rel, 0.5),
        "release_p99": pct(rel, 0.99),
        "per_s_32": rate,
    }


async def ping_baseline(redis_url: str, n: int) -> dict[str, float]:
    client = Redis.from_url(redis_url)
    await client.ping()
    samples = []
    for _ in range(n // 100):
        samples += await timed(100, client.ping)
    await client.aclose()
    return {"p50": pct(samples, 0.5), "p99": pct(samples, 0.99)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--gateway", action="store_true", help="also measure through serve")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of a gateway phase")
    parser.add_argument("--rounds", type=int, default=5, help="off/on phase pairs")
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ping = await ping_baseline(args.redis, args.n)
        redis = await run(args.redis, args.n, home)
        memory = await run(None, args.n, home)
    print(f"requests: {args.n}, 4 layers x 5 figures = 20 checks per call")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'redis PING (baseline)':24}{ping['p50']:10.3f}{ping['p99']:10.3f}")
    for name, r in (("redis", redis), ("in-process", memory)):
        print(f"{name + ' acquire':24}{r['acquire_p50']:10.3f}{r['acquire_p99']:10.3f}")
        print(f"{name + ' release':24}{r['release_p50']:10.3f}{r['release_p99']:10.3f}")
    print(
        f"redis acquire p50 / PING p50: {redis['acquire_p50'] / ping['p50']:.2f}x; "
        f"acquire+release per s with 32 callers: redis {redis['per_s_32']:.0f}, "
        f"in-process {memory['per_s_32']:.0f}"
    )
    if args.gateway:
        from limiter_gateway import gateway_on_off

        for in_process in (False, True):
            await gateway_on_off(
                args.redis,
                seconds=args.seconds,
                clients=args.clients,
                rounds=args.rounds,
                in_process=in_process,
            )


if __name__ == "__main__":
    asyncio.run(main())
