"""The simulated vLLM node behaves as the control plane expects a vLLM to."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from agent.simulator import SimulatorConfig, start_simulator


async def post(http: aiohttp.ClientSession, url: str, path: str, body: dict) -> dict:
    async with http.post(url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_answers_say_they_are_simulated_and_honour_max_tokens() -> None:
    async with start_simulator(SimulatorConfig(model="m", ttft_ms=0, itl_ms=0)) as url:
        async with aiohttp.ClientSession() as http:
            out = await post(
                http,
                url,
                "/v1/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7},
            )
            assert "simulated" in out["choices"][0]["message"]["content"]
            assert out["usage"]["completion_tokens"] == 7
            assert out["choices"][0]["finish_reason"] == "length"
            models = await (await http.get(url + "/v1/models")).json()
            assert models["data"][0]["id"] == "m"
            resp = await http.post(url + "/v1/chat/completions", json={"model": "other"})
            assert resp.status == 404


async def test_stream_chunks_and_final_usage_chunk() -> None:
    async with start_simulator(SimulatorConfig(model="m", ttft_ms=0, itl_ms=0)) as url:
        async with aiohttp.ClientSession() as http:
            body = {
                "model": "m",
                "prompt": "go",
                "max_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            async with http.post(url + "/v1/completions", json=body) as resp:
                raw = (await resp.read()).decode()
    events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [len(c["choices"]) for c in chunks] == [1, 1, 1, 0]
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_excess_sequences_wait_and_metrics_show_it() -> None:
    config = SimulatorConfig(model="m", ttft_ms=200, itl_ms=0, max_seqs=2)
    async with start_simulator(config) as url, aiohttp.ClientSession() as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        calls = [
            asyncio.create_task(post(http, url, "/v1/chat/completions", body)) for _ in range(5)
        ]
        await asyncio.sleep(0.1)
        text = await (await http.get(url + "/metrics")).text()
        await asyncio.gather(*calls)
        after = await (await http.get(url + "/metrics")).text()
    assert 'vllm:num_requests_running{model_name="m"} 2.0' in text
    assert 'vllm:num_requests_waiting{model_name="m"} 3.0' in text
    assert 'vllm:kv_cache_usage_perc{model_name="m"} 1.0' in text
    assert 'vllm:num_requests_running{model_name="m"} 0.0' in after
