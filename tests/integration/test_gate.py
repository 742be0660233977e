"""A node's gate: the engine's OpenAI routes for holders of the node's engine key, nothing else."""

from __future__ import annotations

import httpx

from agent.gate import start_gate
from agent.simulator import SimulatorConfig, start_simulator
from tests.processes import free_port

KEY = "engine-key-1"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def test_gate_forwards_streams_to_key_holders_only() -> None:
    async with start_simulator(SimulatorConfig(model="m", ttft_ms=0, itl_ms=0)) as engine:
        port = free_port()
        runner = await start_gate(engine, KEY, host="127.0.0.1", port=port)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 401
                wrong = {"authorization": "Bearer guess"}
                assert (
                    await http.post("/v1/chat/completions", json=CHAT, headers=wrong)
                ).status_code == 401
                auth = {"authorization": f"Bearer {KEY}"}
                reply = await http.post("/v1/chat/completions", json=CHAT, headers=auth)
                assert reply.status_code == 200
                assert reply.json()["usage"]["completion_tokens"] == 5
                stream = {**CHAT, "stream": True}
                async with http.stream(
                    "POST", "/v1/chat/completions", json=stream, headers=auth
                ) as resp:
                    assert resp.headers["content-type"].startswith("text/event-stream")
                    lines = [line async for line in resp.aiter_lines() if line]
                assert lines[-1] == "data: [DONE]" and len(lines) >= 6
                models = await http.get("/v1/models", headers=auth)
                assert models.json()["data"][0]["id"] == "m"
                # The engine's other routes stay closed, key or not.
                for path in ("/metrics", "/health", "/tokenize", "/pause", "/invocations"):
                    assert (await http.post(path, headers=auth)).status_code in (404, 405)
                    assert (await http.get(path, headers=auth)).status_code in (404, 405)
        finally:
            await runner.cleanup()


async def test_gate_answers_502_when_the_engine_is_down() -> None:
    port = free_port()
    runner = await start_gate(f"http://127.0.0.1:{free_port()}", KEY, host="127.0.0.1", port=port)
    try:
        async with httpx.AsyncClient() as http:
            resp = await http.post(
                f"http://127.0.0.1:{port}/v1/completions",
                json={"model": "m", "prompt": "x"},
                headers={"authorization": f"Bearer {KEY}"},
            )
        assert resp.status_code == 502
    finally:
        await runner.cleanup()
