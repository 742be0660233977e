"""The OpenAI routes under ``/v1``: key auth, checks, limits, and the proxy to a GPU node.

This is the hot path, so it is one bare ASGI app mounted in Litestar rather than Litestar
handlers: Litestar's request and response objects cost ~0.08 ms a request and ~0.15 ms a
stream, more than everything else here together (docs/performance.md). All node traffic goes
through ONE ``aiohttp.ClientSession`` opened in the app's lifespan.

Per request: authenticate the key (cached) → read the body (capped) → check it → ``acquire``
from the limiter → pick a node (least in flight) → forward → record usage before the last
byte goes out → ``release`` the limiter exactly once, however the request ended.

Streams are forwarded event by event as they arrive. Every stream asks the node for usage
(``stream_options.include_usage``) so every request is metered; the usage-only chunk is
removed again when the client did not ask for it. A client that goes away cancels the node
request. A connect error or a 5xx from a node before anything was sent is retried once on
another node.
"""

from __future__ import annotations

import asyncio
from random import getrandbits
from typing import Any

import aiohttp
import msgspec

from api.errors import error_body
from api.sse import DONE, EventSplitter, body_usage, chunk_usage, is_done
from fleet import (
    BodyTooLarge,
    CicError,
    InvalidRequest,
    KeyInfo,
    ModelNotFound,
    NoCapacity,
    NotFound,
    Services,
    UpstreamError,
    UpstreamTimeout,
    get_logger,
    request_id_var,
)
from fleet.limits import Admission, LimitRequest
from fleet.registry import NodeView
from fleet.usage import UsageEvent
from fleet.validation import CHAT, COMPLETIONS, EMBEDDINGS, CheckedRequest, check, model_name

log = get_logger("cicfleet.proxy")

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")
_SSE = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
_UPSTREAM_HEADERS = {"content-type": "application/json"}


def _upstream_headers(node: NodeView) -> dict[str, str]:
    """A managed node's gate wants its engine key (agent/gate.py); a static node gets none."""
    if node.engine_key is None:
        return _UPSTREAM_HEADERS
    return {**_UPSTREAM_HEADERS, "authorization": f"Bearer {node.engine_key}"}


_ROUTES = {
    "/chat/completions": (CHAT, "/v1/chat/completions"),
    "/completions": (COMPLETIONS, "/v1/completions"),
    "/embeddings": (EMBEDDINGS, "/v1/embeddings"),
}
_NO_MODEL = "-"
_CLIENT_CLOSED = 499
_SHUTTING_DOWN = NoCapacity(
    "This server is shutting down; retry the request", retry_after=1, code="shutting_down"
)
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
)


class _Exchange:
    """The state of one proxied request, from arrival to the usage record."""

    __slots__ = (
        "admission",
        "arrived",
        "completion_tokens",
        "cut",
        "disconnected",
        "finished",
        "headers",
        "key",
        "node",
        "prompt_tokens",
        "recorded",
        "req",
        "request_id",
        "started",
        "status",
        "ttft",
    )

    def __init__(self, request_id: str, started: float, arrived: float) -> None:
        self.request_id = request_id
        self.started = started
        self.arrived = arrived
        self.headers: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]
        self.key: KeyInfo | None = None
        self.req: CheckedRequest | None = None
        self.admission: Admission | None = None
        self.node: NodeView | None = None
        self.status = 200
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ttft: float | None = None
        self.recorded = False
        self.disconnected = False
        self.cut = False  # ended by the server's shutdown grace running out
        self.finished = False


def _request_id(value: bytes | None) -> str:
    if value:
        return value.decode("latin-1")[:64]
    return f"{getrandbits(96):024x}"  # unique enough for tracing, and no syscall


class Gateway:
    """The ASGI app behind ``/v1``; ``open``/``close`` run in the control plane's lifespan."""

    def __init__(self) -> None:
        self._services: Services | None = None
        self._http: aiohttp.ClientSession | None = None
        self._active: dict[asyncio.Task[Any], _Exchange] = {}  # completions being served

    async def open(self, services: Services) -> None:
        settings = services.settings
        self._services = services
        self._retry_after = settings.retry_after_seconds
        self._max_body = settings.max_body_bytes
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(
                total=settings.upstream_timeout, connect=settings.upstream_connect_timeout
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    @property
    def in_flight(self) -> int:
        """Completions being served right now (what a graceful shutdown waits for)."""
        return len(self._active)

    def cut(self) -> int:
        """End every completion still running: streams get a retryable 503 error event and
        their usage so far is recorded. Called when the shutdown grace runs out."""
        for task, x in list(self._active.items()):
            x.cut = True
            task.cancel()
        return len(self._active)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- ASGI entry ------------------------------------------------------------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        svc = self._services
        assert svc is not None, "gateway used before the app started"
        auth = rid = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"x-request-id":
                rid = value
            elif name == b"content-length":
                length = value
        x = _Exchange(_request_id(rid), svc.clock.monotonic(), svc.clock.now())
        token = request_id_var.set(x.request_id)
        try:
            path: str = scope["path"]
            if path[-1:] == "/":  # Litestar's mount hands sub-paths over with a trailing '/'
                path = path[:-1]
            route = _ROUTES.get(path)
            if route is not None:
                if scope["method"] != "POST":
                    raise _method_not_allowed("POST")
                await self._completion(x, route[0], route[1], auth, length, receive, send)
            elif path == "/usage":
                if scope["method"] != "GET":
                    raise _method_not_allowed("GET")
                await self._usage(x, auth, scope.get("query_string", b""), send)
            elif path == "/models" or path.startswith("/models/"):
                if scope["method"] != "GET":
                    raise _method_not_allowed("GET")
                await self._models(x, path, auth, send)
            else:
                raise NotFound(f"Unknown request URL: {scope['method']} /v1{path}")
        except CicError as err:
            await _send_error(send, err, x.headers)
        finally:
            request_id_var.reset(token)

    # -- models ----------------------------------------------------------------------------
    async def _models(self, x: _Exchange, path: str, auth: bytes | None, send: Any) -> None:
        svc = self._services
        assert svc is not None
        await svc.auth.authenticate(auth.decode("latin-1") if auth else None)
        models = await svc.catalog.models()
        if path == "/models":
            out: Any = {"object": "list", "data": [_card(m) for m in models.values()]}
        else:
            name = path.removeprefix("/models/")
            model = models.get(name)
            if model is None:
                raise ModelNotFound(f"The model '{name}' does not exist", param="model")
            out = _card(model)
        await _send_json(send, 200, _ENCODER.encode(out), x.headers)

    # -- usage (the caller's own tenant only) ------------------------------------------------
    async def _usage(self, x: _Exchange, auth: bytes | None, query: bytes, send: Any) -> None:
        from api.usage_route import tenant_usage

        svc = self._services
        assert svc is not None
        key = await svc.auth.authenticate(auth.decode("latin-1") if auth else None)
        out = await tenant_usage(svc, key.tenant_id, query)
        await _send_json(send, 200, _ENCODER.encode(out), x.headers)

    # -- completions, embeddings -----------------------------------------------------------
    async def _completion(
        self,
        x: _Exchange,
        endpoint: str,
        upstream_path: str,
        auth: bytes | None,
        length: bytes | None,
        receive: Any,
        send: Any,
    ) -> None:
        svc = self._services
        assert svc is not None
        model_label = _NO_MODEL
        try:
            x.key = await svc.auth.authenticate(auth.decode("latin-1") if auth else None)
            raw = await self._read_body(receive, length)
            try:
                body = _DECODER.decode(raw)
            except msgspec.DecodeError:
                raise InvalidRequest(_BAD_JSON) from None
            name = model_name(body)
            model = (await svc.catalog.models()).get(name)
            if model is None:
                raise ModelNotFound(f"The model '{name}' does not exist", param="model")
            model_label = name
            x.req = req = check(endpoint, body, model)
            x.prompt_tokens = req.prompt_estimate
            if svc.billing is not None and svc.billing.quota.enabled:
                await svc.billing.quota.check(x.key.tenant_id)
            x.admission = await svc.limiter.acquire(
                LimitRequest(key=x.key, model=name, estimated_tokens=req.estimated_tokens)
            )
        except CicError as err:
            x.status = err.status
            svc.metrics.request_done(
                model=model_label,
                endpoint=endpoint,
                status=err.status,
                latency_s=svc.clock.monotonic() - x.started,
            )
            raise
        for hname, hvalue in x.admission.headers.items():
            x.headers.append((hname.encode(), hvalue.encode()))
        gauge = svc.metrics.in_flight(model_label)
        gauge.inc()
        me = asyncio.current_task()
        if me is not None:
            self._active[me] = x
        try:
            if req.stream:
                if not req.include_usage:
                    options = body.get("stream_options") or {}
                    body["stream_options"] = {**options, "include_usage": True}
                    raw = _ENCODER.encode(body)
                await self._stream(x, upstream_path, raw, receive, send)
            else:
                await self._unary(x, upstream_path, raw, send)
        except CicError as err:
            x.status = err.status
            await _send_error(send, err, x.headers)
        finally:
            if me is not None:
                self._active.pop(me, None)
            gauge.dec()
            used = x.prompt_tokens + x.completion_tokens
            await svc.limiter.release(x.admission, used_tokens=used)
            svc.metrics.request_done(
                model=model_label,
                endpoint=endpoint,
                status=x.status,
                latency_s=svc.clock.monotonic() - x.started,
                ttft_s=x.ttft,
                prompt_tokens=x.prompt_tokens if x.recorded else 0,
                completion_tokens=x.completion_tokens,
            )

    async def _read_body(self, receive: Any, length: bytes | None) -> bytes:
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise BodyTooLarge(f"Request body exceeds {self._max_body} bytes")
        msg = await receive()
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body"):
            if len(body) > self._max_body:
                raise BodyTooLarge(f"Request body exceeds {self._max_body} bytes")
            return body
        parts = [body]
        size = len(body)
        while msg.get("more_body"):
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise InvalidRequest("client closed the request")
            part = msg.get("body", b"")
            size += len(part)
            if size > self._max_body:
                raise BodyTooLarge(f"Request body exceeds {self._max_body} bytes")
            parts.append(part)
        return b"".join(parts)

    async def _post(
        self, x: _Exchange, path: str, data: bytes, *, read: bool
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send to a node; on a connect error or a 5xx before any byte reached the client,
        once more to another node. With ``read`` the whole body is read inside the retry
        (nothing was sent yet either way); the caller then owns ``x.node.in_flight``."""
        svc = self._services
        http = self._http
        assert svc is not None and http is not None and x.req is not None
        model = x.req.model.name
        tried: tuple[str, ...] = ()
        last: CicError | None = None
        for _ in range(2):
            node = svc.pool.pick(model, tried)
            if node is None and not tried and svc.waiter.expects(model):
                await svc.waiter.wait(model)  # scaling from zero: 503 beyond its bounds
                node = svc.pool.pick(model, tried)
            if node is None:
                break
            tried += (node.id,)
            node.in_flight += 1
            x.node = node
            try:
                url = node.url + path  # type: ignore[operator]  # routable nodes have one
                resp = await http.post(url, data=data, headers=_upstream_headers(node))
                if resp.status >= 500:
                    resp.release()
                    raise _NodeFailed(f"node answered HTTP {resp.status}")
                content = await resp.read() if read else b""
                svc.pool.report(node, ok=True)
                return resp, content
            except aiohttp.ConnectionTimeoutError:
                kind, last = "connect", UpstreamError("The model's node could not be reached")
            except TimeoutError:
                node.in_flight -= 1
                svc.metrics.upstream_error(model, "timeout")
                raise UpstreamTimeout("The model's node did not answer in time") from None
            except _NodeFailed as exc:
                kind, last = "status", UpstreamError(f"The model's node failed: {exc}")
            except aiohttp.ClientError as exc:
                kind = "connect"
                last = UpstreamError(f"The model's node failed: {type(exc).__name__}")
            node.in_flight -= 1
            svc.pool.report(node, ok=False)
            svc.metrics.upstream_error(model, kind)
            log.warning("node request failed", extra={"node": node.id, "kind": kind})
        if last is None:
            raise NoCapacity(
                f"No capacity for model '{model}' right now; retry later",
                retry_after=self._retry_after,
            )
        raise last

    async def _unary(self, x: _Exchange, path: str, data: bytes, send: Any) -> None:
        resp, content = await self._post(x, path, data, read=True)
        assert x.node is not None
        x.node.in_flight -= 1
        x.status = resp.status
        usage = body_usage(content) if resp.status == 200 else None
        if usage is not None:
            x.prompt_tokens, x.completion_tokens = usage
        await self._record(x)
        ctype = resp.headers.get("content-type", "application/json").encode()
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [(b"content-type", ctype), *x.headers],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _stream(self, x: _Exchange, path: str, data: bytes, receive: Any, send: Any) -> None:
        svc = self._services
        assert svc is not None and x.req is not None
        resp, _ = await self._post(x, path, data, read=False)
        node = x.node
        assert node is not None
        if resp.status != 200:  # a node's own 4xx: pass it on as it is
            try:
                content = await resp.read()
            finally:
                node.in_flight -= 1
                resp.release()
            x.status = resp.status
            await self._record(x)
            await _send_json(send, resp.status, content, x.headers)
            return

        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, x, task))
        include_usage = x.req.include_usage
        clock = svc.clock
        splitter = EventSplitter()
        chunks = 0
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [*_SSE, *x.headers]}
            )
            async for data_in in resp.content.iter_any():
                for event in splitter.feed(data_in):
                    if is_done(event):
                        continue
                    usage = chunk_usage(event)
                    if usage is not None:
                        x.prompt_tokens, x.completion_tokens = usage[0], usage[1]
                        if not usage[2]:
                            await self._record(x)  # before the final chunk goes out
                            if not include_usage:
                                continue
                    else:
                        chunks += 1
                        if x.ttft is None:
                            x.ttft = clock.monotonic() - x.started
                        if not x.recorded:
                            x.completion_tokens = chunks
                    await send({"type": "http.response.body", "body": event, "more_body": True})
            await self._record(x)
            x.finished = True
            watcher.cancel()
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
        except asyncio.CancelledError:
            if not (x.disconnected or x.cut):
                raise
            task.uncancel()
            x.status = _SHUTTING_DOWN.status if x.cut else _CLIENT_CLOSED
            await self._record(x)
            if x.cut:
                event = b"data: " + error_body(_SHUTTING_DOWN) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": False})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The node failed mid-stream: the client keeps what it got and learns why.
            kind = "timeout" if isinstance(exc, TimeoutError) else "stream"
            svc.metrics.upstream_error(x.req.model.name, kind)
            log.warning("node stream broke", extra={"node": node.id, "kind": kind})
            x.status = 504 if kind == "timeout" else 502
            await self._record(x)
            x.finished = True
            watcher.cancel()
            err = UpstreamTimeout if kind == "timeout" else UpstreamError
            event = b"data: " + error_body(err("The model's node failed mid-stream")) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": False})
        finally:
            x.finished = True
            watcher.cancel()
            node.in_flight -= 1
            resp.release()

    async def _record(self, x: _Exchange) -> None:
        """Hand the usage event to the sink, once per request."""
        if x.recorded:
            return
        x.recorded = True
        svc = self._services
        assert svc is not None and x.key is not None and x.req is not None
        node = x.node
        ttft = x.ttft
        event = UsageEvent(
            request_id=x.request_id,
            tenant_id=x.key.tenant_id,
            environment_id=x.key.environment_id,
            key_id=x.key.key_id,
            model=x.req.model.name,
            endpoint=x.req.endpoint,
            stream=x.req.stream,
            status=x.status,
            prompt_tokens=x.prompt_tokens,
            completion_tokens=x.completion_tokens,
            latency_ms=(svc.clock.monotonic() - x.started) * 1000.0,
            created_at=x.arrived,
            ttft_ms=None if ttft is None else ttft * 1000.0,
            node_id=None if node is None else node.id,
            region="local" if node is None else node.region,
            node_concurrency=1 if node is None else max(node.in_flight, 1),
        )
        await svc.usage.record(event)


class _NodeFailed(Exception):
    """A node answered with a 5xx (retried on another node)."""


async def _watch_disconnect(receive: Any, x: _Exchange, task: asyncio.Task[Any]) -> None:
    """Cancel the streaming task when the client goes away, so the node request stops."""
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            if not x.finished:
                x.disconnected = True
                task.cancel()
            return


def _method_not_allowed(allowed: str) -> CicError:
    err = InvalidRequest(f"Method not allowed; use {allowed}", code="method_not_allowed")
    err.status = 405
    err.headers["allow"] = allowed
    return err


def _card(model: Any) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": "cicfleet",
        "context_length": model.context_length,
    }


async def _send_json(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [_JSON, *headers]})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Any, err: CicError, headers: list[tuple[bytes, bytes]]) -> None:
    extra = [(k.lower().encode(), str(v).encode()) for k, v in err.headers.items()]
    try:
        await _send_json(send, err.status, error_body(err), [*headers, *extra])
    except RuntimeError:
        # The response had already started (a stream): nothing more can be said over HTTP.
        log.warning("error after the response started", extra={"code": err.code})
