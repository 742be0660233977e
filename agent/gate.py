"""The node's only public door: the OpenAI routes of its engine, behind the node's engine key.

vLLM's own ``--api-key`` guards only some of its routes (its security guide lists
``/invocations``, ``/tokenize``, ``/pause``, ``/abort_requests`` and more as open), and a cloud
node's port is reachable from the internet. So the engine listens on ``127.0.0.1`` only and the
agent serves the public port: it forwards exactly the routes the gateway uses, to the engine,
streaming, and only with ``Authorization: Bearer <engine key>``. The control plane generates
that key per launch, hands it to the node as a secret, and sends it with every request.

A client that goes away (the gateway cut a stream) closes the engine request too, so the
engine stops generating for nobody.
"""

from __future__ import annotations

import hmac

import aiohttp
from aiohttp import web

from fleet import get_logger

log = get_logger("cicfleet.agent.gate")

ROUTES = (
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
)
_FORWARDED = ("content-type", "accept", "x-request-id")


class Gate:
    """An aiohttp app that forwards :data:`ROUTES` to ``engine_url`` for holders of ``key``."""

    def __init__(self, engine_url: str, key: str) -> None:
        if not key:
            raise ValueError("the gate needs an engine key")
        self._engine = engine_url.rstrip("/")
        self._expected = f"Bearer {key}".encode()
        self._http: aiohttp.ClientSession | None = None
        self.app = web.Application()
        for method, path in ROUTES:
            self.app.router.add_route(method, path, self._forward)
        self.app.on_startup.append(self._open)
        self.app.on_cleanup.append(self._close)

    async def _open(self, _: web.Application) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
        )

    async def _close(self, _: web.Application) -> None:
        if self._http is not None:
            await self._http.close()

    def _allowed(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, self._expected)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.json_response({"error": "Unauthorized"}, status=401)
        assert self._http is not None
        headers = {h: request.headers[h] for h in _FORWARDED if h in request.headers}
        body = await request.read()
        response: web.StreamResponse | None = None
        try:
            async with self._http.request(
                request.method, self._engine + request.path, data=body, headers=headers
            ) as upstream:
                response = web.StreamResponse(status=upstream.status)
                for name in ("Content-Type", "Content-Encoding"):
                    if name in upstream.headers:
                        response.headers[name] = upstream.headers[name]
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except aiohttp.ClientError as exc:
            log.warning("engine request failed", extra={"error": type(exc).__name__})
            if response is not None and response.prepared:
                raise  # mid-stream: the connection drops and the gateway sees a cut stream
            return web.json_response({"error": "engine unavailable"}, status=502)


async def start_gate(engine_url: str, key: str, *, host: str, port: int) -> web.AppRunner:
    """Serve the gate on ``host:port``; the caller cleans the runner up."""
    runner = web.AppRunner(Gate(engine_url, key).app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("gate open", extra={"port": port})
    return runner
