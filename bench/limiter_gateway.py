"""Gateway requests per second with limits off and on, through a real ``cicfleet serve``
sharing the Redis on loopback, in front of one simulated node. Phases alternate (off, on,
off, on, ...) so both see the same load from the other developers on this machine."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import free_port, wait_http  # noqa: E402

MODEL = "bench-llm"
BIN = Path(sys.executable).parent
TOKEN = "bench-admin-token-" + secrets.token_hex(8)
BIG = {"rpm": 10**8, "tpm": 10**11, "rpd": 10**9, "tpd": 10**12, "concurrency": 10**6}
OFF = dict.fromkeys(BIG)  # null: back to the plan, which has no limits


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(
    url: str, key: str, seconds: float, clients: int, tmp: Path, pid: int
) -> tuple[float, float]:
    """Requests per second from ``wrk`` (C, so the load generator takes little of the CPU),
    and the control plane's CPU milliseconds per request: other developers' load on this
    machine moves the first a lot and the second little."""
    script = tmp / "load.lua"
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    )
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    cpu = _cpu_seconds(pid)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            f"{url}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"some requests failed:\n{out}")
    cpu = _cpu_seconds(pid) - cpu
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, cpu * 1000 / max(1, total)


async def gateway_on_off(
    redis_url: str, *, seconds: float, clients: int, rounds: int = 5, in_process: bool = False
) -> None:
    """``in_process``: the control plane counts in process instead of in Redis."""
    prefix = f"bench:{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
        node_port, cp_port = free_port(), free_port()
        env.update(
            CIC_HOME=str(home),
            CIC_PORT=str(cp_port),
            CIC_REDIS_URL="" if in_process else redis_url,
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
            wait_http(f"http://127.0.0.1:{node_port}/health", proc=node, timeout=30)
            url = f"http://127.0.0.1:{cp_port}"
            wait_http(f"{url}/health", proc=server, timeout=30)
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

            _load(url, created["key"], 1.0, clients, home, server.pid)  # warm up
            rates: dict[str, list[float]] = {"off": [], "on": []}
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            for phase in ("off", "on") * rounds:
                limits(BIG if phase == "on" else OFF)
                rate, ms = _load(url, created["key"], seconds, clients, home, server.pid)
                rates[phase].append(rate)
                cpu[phase].append(ms)
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

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    off, on = median(rates["off"]), median(rates["on"])
    cpu_off, cpu_on = median(cpu["off"]), median(cpu["on"])
    store = "in-process" if in_process else "Redis"
    print(f"gateway, {store} limits, {clients} clients, {seconds:.0f} s phases x{rounds} (median):")
    print(f"  limits off {off:8.0f} req/s   {[round(r) for r in rates['off']]}")
    print(f"  limits on  {on:8.0f} req/s   {[round(r) for r in rates['on']]}")
    print(f"  on / off: {on / off:.1%} of the requests per second")
    print(
        f"  control-plane CPU per request: off {cpu_off:.3f} ms, on {cpu_on:.3f} ms "
        f"-> CPU-bound throughput on / off {cpu_off / cpu_on:.1%}"
    )
