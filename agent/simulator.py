"""A simulated vLLM server: speaks vLLM's OpenAI API, generates canned text, uses no GPU.

The embedded demo and the tests run it as a GPU node. It behaves like vLLM where the control
plane can notice: a configurable time to first token and inter-token latency, at most
``max_seqs`` sequences generated at once with the excess waiting in a queue, real SSE chunks
in vLLM's format (with the final usage chunk when ``stream_options.include_usage`` is set),
``max_tokens`` honoured, and vLLM's Prometheus gauges on ``/metrics``. Every generated text
says it is simulated, so nobody mistakes it for a model.

Run it as a process::

    python -m agent.simulator --port 9001 --model demo-llm --ttft-ms 50 --itl-ms 10

or in-process with :func:`start_simulator` (tests).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_TEXT = (
    "This is a simulated response from the cicfleet GPU node simulator; no model generated it. "
).split(" ")
_DEFAULT_COMPLETION_TOKENS = 16


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    model: str = "demo-llm"
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    max_seqs: int = 256
    max_model_len: int = 8192
    completion_tokens: int = _DEFAULT_COMPLETION_TOKENS  # length when max_tokens is not given


class _Engine:
    """Admission like vLLM's scheduler: ``max_seqs`` run, the rest wait in arrival order."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(config.max_seqs)
        self.running = 0
        self.waiting = 0

    @asynccontextmanager
    async def sequence(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    body = {
        "error": {"message": message, "type": "BadRequestError", "param": param, "code": status}
    }
    return web.json_response(body, status=status)


def _count_tokens(value: Any) -> int:
    """A rough token count (one per ~4 characters), as any client-side estimate would be."""
    if isinstance(value, str):
        return max(1, len(value) // 4)
    if isinstance(value, list):
        return sum(_count_tokens(v) for v in value) or 1
    if isinstance(value, dict):
        return _count_tokens(value.get("content") or "") + 3
    return 1


def _words(n: int) -> list[str]:
    return [w + " " for w in itertools.islice(itertools.cycle(_TEXT), n)]


class Simulator:
    """The aiohttp application of one simulated node."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.engine = _Engine(config)
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_post("/v1/embeddings", self.embeddings)
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/metrics", self.metrics)

    # -- plain endpoints -------------------------------------------------------------------
    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(self, _: web.Request) -> web.Response:
        card = {
            "id": self.config.model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": self.config.model,
            "max_model_len": self.config.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def metrics(self, _: web.Request) -> web.Response:
        label = f'model_name="{self.config.model}"'
        usage = self.engine.running / self.config.max_seqs
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{label}}} {float(self.engine.running)}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{label}}} {float(self.engine.waiting)}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{label}}} {usage}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def embeddings(self, request: web.Request) -> web.Response:
        body, err = await self._body(request)
        if err is not None:
            return err
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        async with self.engine.sequence():
            await self._sleep(self.config.ttft_ms)
        data = [
            {"object": "embedding", "index": i, "embedding": [0.0, 0.1, 0.2, 0.3]}
            for i in range(len(items))
        ]
        prompt = _count_tokens(inputs)
        usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        return web.json_response(
            {"object": "list", "data": data, "model": self.config.model, "usage": usage}
        )

    # -- generation ------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, err = await self._body(request)
        if err is not None:
            return err
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list", "messages")
        return await self._generate(request, body, _count_tokens(messages), chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, err = await self._body(request)
        if err is not None:
            return err
        if "prompt" not in body:
            return _error(400, "prompt is required", "prompt")
        return await self._generate(request, body, _count_tokens(body["prompt"]), chat=False)

    async def _generate(
        self, request: web.Request, body: dict[str, Any], prompt_tokens: int, *, chat: bool
    ) -> web.StreamResponse:
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        n_tokens = self.config.completion_tokens if max_tokens is None else int(max_tokens)
        if prompt_tokens + n_tokens > self.config.max_model_len:
            return _error(400, "prompt plus max_tokens exceeds the model's context", "max_tokens")
        words = _words(n_tokens)
        stream = bool(body.get("stream"))
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        finish = "length" if max_tokens is not None and len(words) >= int(max_tokens) else "stop"
        async with self.engine.sequence():
            await self._sleep(self.config.ttft_ms)
            if not stream:
                for _ in words[1:]:
                    await self._sleep(self.config.itl_ms)
                return web.json_response(self._full(rid, created, words, usage, finish, chat))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            obj = "chat.completion.chunk" if chat else "text_completion"
            if chat:
                first = {"index": 0, "delta": {"role": "assistant", "content": ""}}
                await self._event(resp, rid, obj, created, [{**first, "finish_reason": None}])
            for i, word in enumerate(words):
                if i:
                    await self._sleep(self.config.itl_ms)
                last = i == len(words) - 1
                choice: dict[str, Any] = {"index": 0, "finish_reason": finish if last else None}
                if chat:
                    choice["delta"] = {"content": word}
                else:
                    choice["text"] = word
                await self._event(resp, rid, obj, created, [choice])
            if include_usage:
                await self._event(resp, rid, obj, created, [], usage=usage)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp

    def _full(
        self,
        rid: str,
        created: int,
        words: list[str],
        usage: dict[str, int],
        finish: str,
        chat: bool,
    ) -> dict[str, Any]:
        text = "".join(words)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish}
            obj = "text_completion"
        return {
            "id": rid,
            "object": obj,
            "created": created,
            "model": self.config.model,
            "choices": [choice],
            "usage": usage,
        }

    async def _event(
        self,
        resp: web.StreamResponse,
        rid: str,
        obj: str,
        created: int,
        choices: list[dict[str, Any]],
        *,
        usage: dict[str, int] | None = None,
    ) -> None:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": obj,
            "created": created,
            "model": self.config.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = await request.json()
        except ValueError:
            return {}, _error(400, "body is not valid JSON")
        if not isinstance(body, dict):
            return {}, _error(400, "body must be a JSON object")
        if body.get("model") != self.config.model:
            return {}, _error(404, f"The model `{body.get('model')}` does not exist.", "model")
        return body, None

    @staticmethod
    async def _sleep(ms: float) -> None:
        if ms > 0:
            await asyncio.sleep(ms / 1000)


@asynccontextmanager
async def start_simulator(
    config: SimulatorConfig, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve a simulator in the running event loop; yields its base URL (``http://host:port``)."""
    runner = web.AppRunner(Simulator(config).app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated vLLM OpenAI server (no GPU, no model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="demo-llm")
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--itl-ms", type=float, default=5.0)
    parser.add_argument("--max-seqs", type=int, default=256)
    parser.add_argument("--max-model-len", type=int, default=8192)
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        model=args.model,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        max_seqs=args.max_seqs,
        max_model_len=args.max_model_len,
    )
    print(f"simulated vLLM server for {args.model!r} on http://{args.host}:{args.port}", flush=True)
    web.run_app(Simulator(config).app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
