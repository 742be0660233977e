"""Limits as the official ``openai`` client sees them, through two control-plane processes
sharing one Redis (and one database), in front of simulated GPU nodes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from redis import Redis

from tests.conftest import free_port
from tests.e2e.conftest import BIN, MODEL, ROOT, start_simulator, stop, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
SLOW = "slow-llm"  # 40 tokens at 100 ms each: a stream that holds its slot for ~4 s
LEASE_SECONDS = 2


@dataclass
class Replicas:
    urls: list[str]
    procs: list[subprocess.Popen]
    keys: dict[str, str]

    def client(self, i: int, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.urls[i]}/v1", api_key=self.keys[key], max_retries=0)

    def aclient(self, i: int, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.urls[i]}/v1", api_key=self.keys[key], max_retries=0
        )


async def _seed(settings_env: dict[str, str], fast: str, slow: str) -> dict[str, str]:
    from fleet import build_services, load_settings

    settings = load_settings(
        home=settings_env["CIC_HOME"], database_url=settings_env["CIC_DATABASE_URL"]
    )
    async with build_services(settings, migrate=True) as svc:
        for model, url in ((MODEL, fast), (SLOW, slow)):
            await svc.catalog.create_model(model, context_length=4096, actor="test")
            await svc.nodes.add_static(model, url, actor="test")
        await svc.tenancy.create_tenant("acme", plan="pro", actor="test")
        # only the keys' own limits are under test: lift the plan's concurrency cap
        tenant = await svc.limits.target(tenant="acme")
        await svc.limits.set_override(tenant, {"concurrency": -1}, actor="test")
        keys = {}
        for name, figures in (
            ("rpm100", {"rpm": 100}),
            ("conc8", {"concurrency": 8}),
            ("conc2", {"concurrency": 2}),
        ):
            key, plaintext = await svc.tenancy.create_key("acme", name=name, actor="test")
            target = await svc.limits.target(key=key.id)
            await svc.limits.set_override(target, figures, actor="test")
            keys[name] = plaintext
    return keys


def _serve(env: dict[str, str], log: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**env, "CIC_PORT": str(port)}
    proc = subprocess.Popen(
        [str(BIN / "cicfleet"), "serve"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc=proc, timeout=30)
    return url, proc


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    from tests.conftest import REDIS_URL, _require

    _require("Redis", "127.0.0.1", 6379)
    home = tmp_path_factory.mktemp("cic")
    prefix = f"cictest:{os.urandom(4).hex()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
    env.update(
        CIC_HOME=str(home),
        CIC_DATABASE_URL=f"sqlite+aiosqlite:///{home / 'cic.db'}",
        CIC_HOST="127.0.0.1",
        CIC_REDIS_URL=REDIS_URL,
        CIC_REDIS_PREFIX=prefix,
        CIC_REPLICAS="2",
        CIC_LIMITS_LEASE_SECONDS=str(LEASE_SECONDS),
        CIC_USAGE_FLUSH_SECONDS="0.1",
        CIC_LOG_LEVEL="WARNING",
    )
    fast_port, slow_port = free_port(), free_port()
    sims = [
        start_simulator(fast_port, ttft_ms=5, itl_ms=20),
        start_simulator(slow_port, model=SLOW, ttft_ms=5, itl_ms=100),
    ]
    procs: list[subprocess.Popen] = []
    try:
        keys = asyncio.run(
            _seed(env, f"http://127.0.0.1:{fast_port}", f"http://127.0.0.1:{slow_port}")
        )
        urls = []
        for i in range(2):
            url, proc = _serve(env, home / f"serve-{i}.log")
            urls.append(url)
            procs.append(proc)
        yield Replicas(urls=urls, procs=procs, keys=keys)
    finally:
        for proc in [*procs, *sims]:
            stop(proc)
        redis = Redis.from_url(REDIS_URL)
        stale = list(redis.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            redis.delete(*stale)
        redis.close()


async def _chat(client: openai.AsyncOpenAI, **kw: object) -> object:
    kw.setdefault("max_tokens", 2)
    return await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], **kw
    )


def test_400_concurrent_requests_on_100_per_minute(replicas: Replicas) -> None:
    async def run() -> tuple[int, list[openai.RateLimitError], float]:
        clients = [replicas.aclient(i, "rpm100") for i in range(2)]
        started = time.monotonic()
        results = await asyncio.gather(
            *(_chat(clients[i % 2]) for i in range(400)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        for c in clients:
            await c.close()
        refused = [r for r in results if isinstance(r, openai.RateLimitError)]
        others = [r for r in results if isinstance(r, BaseException) and r not in refused]
        assert not others, others[:3]
        return 400 - len(refused), refused, elapsed

    admitted, refused, elapsed = asyncio.run(run())
    # a burst of exactly the limit, plus what the minute drained meanwhile (one per 0.6 s)
    assert 100 <= admitted <= 100 + int(elapsed / 0.6) + 1, (admitted, elapsed)
    assert all("100 requests per minute on the key layer" in e.message for e in refused)
    err = refused[0]
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    headers = err.response.headers
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-reset-requests"]


def test_admitted_responses_carry_the_tightest_layer(replicas: Replicas) -> None:
    raw = replicas.client(1, "conc2").chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    # the pro plan's tenant layer (1,000 rpm, 1,000,000 tpm) is the tightest left
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 1_000_000


def test_concurrency_8_holds_under_200_streaming_clients(replicas: Replicas) -> None:
    async def run() -> tuple[int, int, list[openai.RateLimitError]]:
        clients = [replicas.aclient(i, "conc8") for i in range(2)]
        in_flight = peak = served = 0
        refused: list[openai.RateLimitError] = []

        async def one(i: int) -> None:
            nonlocal in_flight, peak, served
            try:
                stream = await _chat(clients[i % 2], stream=True, max_tokens=10)
            except openai.RateLimitError as exc:
                refused.append(exc)
                return
            in_flight += 1
            peak = max(peak, in_flight)
            async for _ in stream:
                pass
            in_flight -= 1
            served += 1

        await asyncio.gather(*(one(i) for i in range(200)))
        # no slot leaked: 8 fresh streams all get in
        await asyncio.gather(*(one(i) for i in range(8)))
        for c in clients:
            await c.close()
        return peak, served, refused

    peak, served, refused = asyncio.run(run())
    assert peak <= 8 and served >= 16, (peak, served)
    assert served + len(refused) == 208
    assert all("8 concurrent requests on the key layer" in e.message for e in refused)


def test_slots_of_a_sigkilled_replica_come_back(replicas: Replicas, tmp_path: Path) -> None:
    victim = replicas.procs[0]
    holder = replicas.client(0, "conc2")
    streams = [
        holder.chat.completions.create(
            model=SLOW, messages=[{"role": "user", "content": "hi"}], max_tokens=40, stream=True
        )
        for _ in range(2)
    ]
    for s in streams:
        next(iter(s))  # both streams are running on replica 0
    other = replicas.client(1, "conc2")
    with pytest.raises(openai.RateLimitError, match="2 concurrent requests"):
        _chat_sync(other)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    while True:
        try:
            _chat_sync(other)
            break
        except openai.RateLimitError:
            assert time.monotonic() - killed_at < LEASE_SECONDS + 5, "slots never came back"
            time.sleep(0.1)
    assert time.monotonic() - killed_at < LEASE_SECONDS + 5


def _chat_sync(client: openai.OpenAI) -> object:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
