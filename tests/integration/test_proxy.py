"""The /v1 proxy in a real server against in-process nodes that misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

from agent.simulator import SimulatorConfig, start_simulator
from api.app import create_app
from fleet import load_settings
from fleet.limits import Admission, LimitRequest
from fleet.usage import UsageEvent
from tests.conftest import free_port

MODEL = "m"


@pytest.fixture
def database_url(tmp_path) -> str:
    """The proxy does not care which store holds its tenants (both are covered elsewhere)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'cic.db'}"


class CountingLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.released: list[int] = []

    async def acquire(self, request: LimitRequest) -> Admission:
        self.acquired += 1
        return Admission(request=request, headers={"x-ratelimit-remaining-requests": "99"})

    async def release(self, admission: Admission, *, used_tokens: int) -> None:
        self.released.append(used_tokens)

    async def close(self) -> None:
        return None


class ListSink:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    async def record(self, event: UsageEvent) -> None:
        self.events.append(event)

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class Node:
    """A hand-written node: answers 500, hangs, or streams slowly and notices cancellation."""

    mode: str = "ok"
    chunks: int = 20
    pause: float = 0.0
    hits: int = 0
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.mode == "fail":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "hang":
            await asyncio.sleep(30)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(self.chunks):
                chunk = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                await asyncio.sleep(self.pause)
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled.set()
            raise
        return resp


@asynccontextmanager
async def serve_node(node: Node) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", node.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class Plane:
    url: str
    key: str
    limiter: CountingLimiter
    sink: ListSink
    http: aiohttp.ClientSession
    app: Any = None

    async def chat(self, *, raw: bytes | None = None, **body: object) -> aiohttp.ClientResponse:
        payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
        return await self.http.post(
            f"{self.url}/v1/chat/completions",
            data=raw if raw is not None else json.dumps(payload).encode(),
            headers={"authorization": f"Bearer {self.key}"},
        )


@asynccontextmanager
async def plane_with(services, node_urls: list[str], **overrides: object) -> AsyncIterator[Plane]:
    await services.catalog.create_model(MODEL, context_length=2048, actor="t")
    await services.tenancy.create_tenant("acme", actor="t")
    _, key = await services.tenancy.create_key("acme", actor="t")
    for url in node_urls:
        await services.nodes.add_static(MODEL, url, actor="t")
    settings = load_settings(database_url=services.settings.effective_database_url, **overrides)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, ws="none")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "server failed to start"
        await asyncio.sleep(0.01)
    limiter, sink = CountingLimiter(), ListSink()
    app.state.services.limiter = limiter
    app.state.services.usage = sink
    try:
        async with aiohttp.ClientSession() as http:
            yield Plane(f"http://127.0.0.1:{port}", key, limiter, sink, http, app)
    finally:
        server.should_exit = True
        await task


async def error_of(resp: aiohttp.ClientResponse) -> dict:
    return (await resp.json())["error"]


async def test_5xx_is_retried_once_on_another_node(services) -> None:
    bad, good = Node(mode="fail"), Node()
    async with serve_node(bad) as u1, serve_node(good) as u2, plane_with(services, [u1, u2]) as p:
        for _ in range(4):
            resp = await p.chat(stream=True)
            assert resp.status == 200 and b"t19 " in await resp.read()
    assert bad.hits >= 1 and good.hits == 4
    assert p.limiter.acquired == 4 and len(p.limiter.released) == 4


async def test_every_node_failing_is_502_and_limits_released(services) -> None:
    async with serve_node(Node(mode="fail")) as u1, plane_with(services, [u1]) as p:
        resp = await p.chat()
        assert resp.status == 502 and (await error_of(resp))["code"] == "upstream_error"
        assert resp.headers["x-ratelimit-remaining-requests"] == "99"
    assert p.limiter.acquired == 1 and len(p.limiter.released) == 1


async def test_no_node_is_503_with_retry_after(services) -> None:
    async with plane_with(services, [], retry_after_seconds=7) as p:
        resp = await p.chat()
        assert resp.status == 503 and resp.headers["retry-after"] == "7"
        assert (await error_of(resp))["code"] == "no_capacity"
    assert len(p.limiter.released) == 1


async def test_slow_node_is_504(services) -> None:
    async with (
        serve_node(Node(mode="hang")) as u1,
        plane_with(services, [u1], upstream_timeout=0.3) as p,
    ):
        resp = await p.chat()
        assert resp.status == 504 and (await error_of(resp))["code"] == "upstream_timeout"


async def test_body_cap_and_bad_json(services) -> None:
    async with plane_with(services, [], max_body_bytes=2048) as p:
        resp = await p.chat(raw=b"{" + b" " * 4096 + b"}")
        assert resp.status == 413
        resp = await p.chat(raw=b'{"model": ')
        assert resp.status == 400 and "JSON" in (await error_of(resp))["message"]
    assert p.limiter.acquired == 0


async def test_unknown_route_and_wrong_method(services) -> None:
    async with plane_with(services, []) as p:
        resp = await p.http.get(f"{p.url}/v1/nothing-here")
        assert resp.status == 404 and (await error_of(resp))["type"] == "invalid_request_error"
        resp = await p.http.get(f"{p.url}/v1/chat/completions")
        assert resp.status == 405 and resp.headers["allow"] == "POST"


async def test_usage_chunk_is_stripped_but_metered(services) -> None:
    config = SimulatorConfig(model=MODEL, ttft_ms=1, itl_ms=0)
    async with start_simulator(config) as u1, plane_with(services, [u1]) as p:
        resp = await p.chat(stream=True, max_tokens=5)
        text = (await resp.read()).decode()
        assert '"usage"' not in text and text.endswith("data: [DONE]\n\n")
        resp = await p.chat(stream=True, max_tokens=5, stream_options={"include_usage": True})
        assert '"completion_tokens": 5' in (await resp.read()).decode()
    assert [e.completion_tokens for e in p.sink.events] == [5, 5]
    assert all(e.ttft_ms is not None and e.node_id for e in p.sink.events)
    assert p.limiter.released == [e.prompt_tokens + 5 for e in p.sink.events]


async def test_client_going_away_cancels_the_node_request(services) -> None:
    node = Node(chunks=200, pause=0.01)
    async with serve_node(node) as u1, plane_with(services, [u1]) as p:
        resp = await p.chat(stream=True)
        seen = b""
        while seen.count(b"\n\n") < 5:
            seen += await resp.content.readany()
        resp.close()  # the client hangs up mid-stream
        await asyncio.wait_for(node.cancelled.wait(), 5)
        for _ in range(100):
            if p.sink.events:
                break
            await asyncio.sleep(0.01)
    (event,) = p.sink.events
    assert event.status == 499 and 5 <= event.completion_tokens < 200
    assert len(p.limiter.released) == 1


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
async def test_missing_key_is_401(services, path: str) -> None:
    async with plane_with(services, []) as p:
        resp = await p.http.request("GET" if "models" in path else "POST", f"{p.url}{path}")
        assert resp.status == 401 and resp.headers["x-request-id"]


async def test_request_ids_and_metrics(services) -> None:
    config = SimulatorConfig(model=MODEL, ttft_ms=0, itl_ms=0)
    async with start_simulator(config) as u1, plane_with(services, [u1]) as p:
        resp = await p.http.get(f"{p.url}/health", headers={"x-request-id": "probe-1"})
        assert resp.headers["x-request-id"] == "probe-1"
        resp = await p.http.get(f"{p.url}/health")
        assert len(resp.headers["x-request-id"]) == 24
        assert (await p.chat(max_tokens=2)).status == 200
        text = await (await p.http.get(f"{p.url}/metrics")).text()
    assert 'cic_requests_total{endpoint="chat.completions",model="m",status="200"} 1.0' in text
    assert 'cic_tokens_total{kind="completion",model="m"} 2.0' in text
    assert "cic_request_seconds_bucket" in text and 'cic_in_flight{model="m"} 0.0' in text


@pytest.mark.parametrize("cors", [None, "https://app.example"])
async def test_one_request_id_and_cors_when_configured(services, cors: str | None) -> None:
    config = SimulatorConfig(model=MODEL, ttft_ms=0, itl_ms=0)
    overrides = {"cors_origins": [cors]} if cors else {}
    async with start_simulator(config) as u1, plane_with(services, [u1], **overrides) as p:
        resp = await p.http.post(
            f"{p.url}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {p.key}", "origin": "https://app.example"},
        )
        assert resp.status == 200 and len(resp.headers.getall("x-request-id")) == 1
        allowed = resp.headers.get("access-control-allow-origin")
        assert allowed == (cors if cors else None)
