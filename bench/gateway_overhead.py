"""What cicfleet's gateway adds over calling a node directly.

A fake node (raw asyncio, instant canned answers) is loaded directly and through cicfleet
(key auth, limiter, usage recording all on; proxy pinned to one core with ``taskset``) at 1,
32 and 128 concurrent clients, non-streamed and streamed. Prints requests/s and p50/p99 for
both and their ratio, plus the time to first streamed byte added by the gateway.

Load comes from ``wrk`` (C; install it with ``apt-get install -y wrk``) so the load generator
is not the bottleneck; the TTFT probe is a small aiohttp client used for both paths.

    .venv/bin/python bench/gateway_overhead.py [--server uvicorn|granian|both] [--duration 5]

The machine may be shared: compare the ratios of one run, and run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import free_port, wait_port  # noqa: E402

BIN = Path(sys.executable).parent
MODEL = "bench-llm"
CONCURRENCY = (1, 32, 128)
PROXY_CPU = "0"
LOAD_CPU = "1"

# -- the fake node ---------------------------------------------------------------------------


def _chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def _event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


_BODY = json.dumps(
    {
        "id": "cmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
UNARY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)
_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
STREAM = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
STREAM += _chunked(
    _event({**_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
    *(
        _event({**_CHUNK, "choices": [{"index": 0, "delta": {"content": w}}]})
        for w in ("one ", "two ", "three")
    ),
    _event({**_CHUNK, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}),
    b"data: [DONE]\n\n",
)


class FakeNode(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one canned answer per request, nothing else."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(
                    head[at + 15 : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None]
                )
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            stream = b'"stream":true' in body or b'"stream": true' in body
            self.transport.write(STREAM if stream else UNARY)  # type: ignore[attr-defined]


def run_fake_node(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(FakeNode, "127.0.0.1", port, backlog=1024, reuse_address=True)
    )
    loop.run_until_complete(server.serve_forever())


# -- processes -------------------------------------------------------------------------------


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") else argv


async def seed(env: dict[str, str], node_url: str) -> str:
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from fleet import build_services, load_settings

    settings = load_settings(home=env["CIC_HOME"], database_url=env["CIC_DATABASE_URL"])
    async with build_services(settings, migrate=True) as svc:
        await svc.catalog.create_model(MODEL, context_length=8192, actor="bench")
        await svc.tenancy.create_tenant("bench", plan="pro", actor="bench")
        # Limits stay on (the limiter does its real work per request) but far above the load.
        target = await svc.limits.target(tenant="bench")
        huge = 10**9
        await svc.limits.set_override(
            target,
            {"rpm": huge, "tpm": huge, "rpd": huge, "tpd": huge, "concurrency": 100_000},
            actor="bench",
        )
        _, key = await svc.tenancy.create_key("bench", actor="bench")
        await svc.nodes.add_static(MODEL, node_url, actor="bench")
    return key


def server_argv(server: str, port: int) -> list[str]:
    if server == "granian":
        return [
            str(BIN / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop",
            "--no-ws", "--log-level", "warning", "--no-access-log", "api.asgi:app",
        ]  # fmt: skip
    return [
        str(BIN / "python"), "-m", "uvicorn", "--factory", "api.asgi:app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--ws", "none",
        "--no-access-log", "--log-level", "warning", "--lifespan", "on",
    ]  # fmt: skip


# -- load ------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (granian runs a worker process)."""
    pids = [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                          text=True).stdout.split())]  # fmt: skip
    ticks = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, key: str, *, clients: int, seconds: float, stream: bool, tmp: Path, pid: int = 0
) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    if stream:
        body["stream"] = True
    script = tmp / f"wrk_{int(stream)}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(body)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    argv = [
        "wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency",
        "-s", str(script), f"{url}/v1/chat/completions",
    ]  # fmt: skip
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(pinned(LOAD_CPU, argv), capture_output=True, text=True, check=True).stdout
    spent = cpu_seconds(pid) - before if pid else 0.0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    pct = {}
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        pct[p] = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")  # type: ignore
    return {
        "rps": rps,
        "p50": pct["50"],
        "p99": pct["99"],
        "errors": int(errors.group(1)) if errors else 0,
        "cpu_us": spent * 1e6 / max(total, 1),
    }


async def ttft_probe(url: str, key: str, n: int) -> list[float]:
    """Milliseconds to the first streamed byte, one client, ``n`` sequential requests."""
    import aiohttp

    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    out = []
    async with aiohttp.ClientSession() as http:
        for i in range(n + 50):
            t0 = time.perf_counter()
            async with http.post(f"{url}/v1/chat/completions", data=body, headers=headers) as r:
                await r.content.readany()
                t1 = time.perf_counter()
                await r.read()
            if i >= 50:  # warm-up
                out.append((t1 - t0) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# -- main ------------------------------------------------------------------------------------


def bench_server(server: str, args: argparse.Namespace, node_url: str, tmp: Path) -> None:
    home = tmp / server
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
    env.update(
        CIC_HOME=str(home),
        CIC_DATABASE_URL=f"sqlite+aiosqlite:///{home / 'cic.db'}",
        CIC_LOG_LEVEL="WARNING",
    )
    key = asyncio.run(seed(env, node_url))
    proxy = subprocess.Popen(pinned(PROXY_CPU, server_argv(server, port)), cwd=ROOT, env=env)
    try:
        wait_port(port, proc=proxy)
        proxy_url = f"http://127.0.0.1:{port}"
        wrk(proxy_url, key, clients=8, seconds=1, stream=False, tmp=tmp)  # warm-up
        print(f"\n== {server}: proxy pinned to CPU {PROXY_CPU}, node and wrk on CPU {LOAD_CPU}")
        print(
            f"{'mode':<7}{'clients':>8} | {'direct rps':>10} {'p50 ms':>7} {'p99 ms':>7} | "
            f"{'proxy rps':>10} {'p50 ms':>7} {'p99 ms':>7} | {'rps ratio':>9} {'+p50 ms':>8} "
            f"{'proxy CPU/req':>13}"
        )
        for stream in (False, True):
            for clients in args.concurrency:
                d = wrk(
                    node_url, key, clients=clients, seconds=args.duration, stream=stream, tmp=tmp
                )
                p = wrk(
                    proxy_url,
                    key,
                    clients=clients,
                    seconds=args.duration,
                    stream=stream,
                    tmp=tmp,
                    pid=proxy.pid,
                )
                bad = f"  ({p['errors']} non-2xx)" if p["errors"] else ""
                print(
                    f"{'stream' if stream else 'unary':<7}{clients:>8} | {d['rps']:>10.0f} "
                    f"{d['p50']:>7.3f} {d['p99']:>7.3f} | {p['rps']:>10.0f} {p['p50']:>7.3f} "
                    f"{p['p99']:>7.3f} | {p['rps'] / d['rps']:>9.3f} "
                    f"{p['p50'] - d['p50']:>8.3f} {p['cpu_us']:>10.0f} us{bad}"
                )
        direct = asyncio.run(ttft_probe(node_url, key, args.ttft_requests))
        via = asyncio.run(ttft_probe(proxy_url, key, args.ttft_requests))
        print(
            f"TTFT, 1 client, {args.ttft_requests} streams: direct p50 {pct(direct, 0.5):.3f} ms "
            f"p99 {pct(direct, 0.99):.3f} ms | proxy p50 {pct(via, 0.5):.3f} ms p99 "
            f"{pct(via, 0.99):.3f} ms | added p50 {pct(via, 0.5) - pct(direct, 0.5):.3f} ms, "
            f"p99 {pct(via, 0.99) - pct(direct, 0.99):.3f} ms"
        )
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "granian", "both"), default="both")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")],
                        default=list(CONCURRENCY))  # fmt: skip
    parser.add_argument("--ttft-requests", type=int, default=1000)
    parser.add_argument("--node", type=int, help=argparse.SUPPRESS)  # internal: run the node
    args = parser.parse_args()
    if args.node:
        run_fake_node(args.node)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed as the load generator: apt-get install -y wrk")
    node_port = free_port()
    node = subprocess.Popen(
        pinned(LOAD_CPU, [sys.executable, __file__, "--node", str(node_port)]), cwd=ROOT
    )
    try:
        wait_port(node_port, proc=node)
        with tempfile.TemporaryDirectory() as tmp:
            servers = ("uvicorn", "granian") if args.server == "both" else (args.server,)
            for server in servers:
                bench_server(server, args, f"http://127.0.0.1:{node_port}", Path(tmp))
    finally:
        node.kill()


if __name__ == "__main__":
    main()
