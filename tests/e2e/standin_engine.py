"""A tiny stand-in for a vLLM server (health, metrics, a slow chat completion) for the fleet
end-to-end tests. Run: python standin_engine.py --port P --model M"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

running = 0


async def health(_: web.Request) -> web.Response:
    return web.Response(text="")


async def metrics(_: web.Request) -> web.Response:
    return web.Response(
        text=f'vllm:num_requests_running{{model_name="m"}} {float(running)}\n'
        f'vllm:num_requests_waiting{{model_name="m"}} 0.0\n'
        f'vllm:gpu_cache_usage_perc{{model_name="m"}} 0.1\n'
    )


async def chat(request: web.Request) -> web.Response:
    global running
    body = await request.json()
    running += 1
    try:
        await asyncio.sleep(float(body.get("metadata", {}).get("delay", 0.05)))
    finally:
        running -= 1
    return web.json_response(
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="m")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
