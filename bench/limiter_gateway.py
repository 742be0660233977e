"""Gateway requests per second with limits off and on, through a real ``cicfleet serve``
sharing the Redis on loopback, in front of one simulated node. Phases alternate (off, on,
off, on, ...) so both see the same load from the other developers on this machine."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from redis.asyncio import Redis

MODEL = "bench-llm"
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-admin-token-" + secrets.token_hex(8)
BIG = {"rpm": 10**8, "tpm": 10**11, "rpd": 10**9, "tpd": 10**12, "concurrency": 10**6}
OFF = dict.fromkeys(BIG)  # null: back to the plan, which has no limits


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def _load(url: str, key: str, seconds: float, clients: int) -> float:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    headers = {"authorization": f"Bearer {key}"}
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            done += 1

    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return done / (time.monotonic() - started)


async def gateway_on_off(redis_url: str, *, seconds: float, clients: int) -> None:
    prefix = f"bench:{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
        node_port, cp_port = _port(), _port()
        env.update(
            CIC_HOME=str(home),
            CIC_PORT=str(cp_port),
            CIC_REDIS_URL=redis_url,
            CIC_REDIS_PREFIX=prefix,
            CIC_ADMIN_TOKEN=TOKEN,
            CIC_LOG_LEVEL="WARNING",
        )
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent.simulator",
                "--port",
                str(node_port),
                "--model",
                MODEL,
                "--ttft-ms",
                "0",
                "--itl-ms",
                "0",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen(
            [str(BIN / "cicfleet"), "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(f"http://127.0.0.1:{node_port}/health", node)
            url = f"http://127.0.0.1:{cp_port}"
            _wait(f"{url}/health", server)
            admin = httpx.Client(base_url=url, headers={"authorization": f"Bearer {TOKEN}"})
            admin.post("/admin/models", json={"name": MODEL}).raise_for_status()
            admin.post(
                "/admin/nodes", json={"model": MODEL, "url": f"http://127.0.0.1:{node_port}"}
            ).raise_for_status()
            admin.post("/admin/tenants", json={"name": "bench", "plan": "none"}).raise_for_status()
            created = admin.post("/admin/tenants/bench/keys", json={}).json()
            targets = [
                {"global": True},
                {"tenant": "bench"},
                {"tenant": "bench", "environment": "prod"},
                {"key": created["id"]},
            ]

            def limits(figures: dict) -> None:
                for t in targets:
                    admin.put("/admin/limits", json={**t, **figures}).raise_for_status()

            await _load(url, created["key"], 1.0, clients)  # warm up
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for phase in ("off", "on") * 3:
                limits(BIG if phase == "on" else OFF)
                rates[phase].append(await _load(url, created["key"], seconds, clients))
            limits(OFF)
        finally:
            for proc in (server, node):
                proc.terminate()
                proc.wait(10)
            raw = Redis.from_url(redis_url)
            keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
            if keys:
                await raw.delete(*keys)
            await raw.aclose()
    off = sorted(rates["off"])[1]
    on = sorted(rates["on"])[1]
    print(f"gateway, {clients} clients, {seconds:.0f} s phases x3 each (median):")
    print(f"  limits off {off:8.0f} req/s   {[round(r) for r in rates['off']]}")
    print(f"  limits on  {on:8.0f} req/s   {[round(r) for r in rates['on']]}")
    print(f"  on / off: {on / off:.1%}")
