"""``cicfleet serve --demo``: the embedded control plane with simulated GPU nodes, a demo
tenant and key, ready for an OpenAI client the moment it starts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import click
import httpx

from fleet import NotFound, Settings, build_services, get_logger, hash_key

log = get_logger("cicfleet.demo")

DEMO_MODEL = "demo-llm"
DEMO_TENANT = "demo"
DEMO_NODES = 2


@dataclass
class Demo:
    key: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def close(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_simulator(port: int, home: Path, index: int) -> subprocess.Popen[bytes]:
    logfile = open(home / f"demo-node-{index}.log", "ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model",
            DEMO_MODEL,
        ],
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_healthy(url: str, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"simulated node at {url} did not become healthy")


async def _provision(settings: Settings, node_urls: list[str]) -> str:
    """Model, tenant, key and nodes for the demo; reuses the key across restarts."""
    key_file = settings.home / "demo_key"
    nodes_file = settings.home / "demo_nodes.json"
    async with build_services(settings) as svc:
        if DEMO_MODEL not in await svc.catalog.models():
            await svc.catalog.create_model(
                DEMO_MODEL,
                context_length=8192,
                default_max_tokens=256,
                input_per_1m=Decimal("0.10"),
                output_per_1m=Decimal("0.30"),
                actor="demo",
            )
        try:
            await svc.tenancy.get_tenant(DEMO_TENANT)
        except NotFound:
            await svc.tenancy.create_tenant(DEMO_TENANT, plan="pro", actor="demo")
        key = key_file.read_text().strip() if key_file.exists() else ""
        if not key or await svc.tenancy.resolve(hash_key(key)) is None:
            _, key = await svc.tenancy.create_key(DEMO_TENANT, name="demo", actor="demo")
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
        old = json.loads(nodes_file.read_text()) if nodes_file.exists() else []
        for node_id in old:
            try:
                await svc.nodes.remove(node_id, actor="demo")
            except NotFound:
                pass
        new = [(await svc.nodes.add_static(DEMO_MODEL, url, actor="demo")).id for url in node_urls]
        nodes_file.write_text(json.dumps(new))
    return key


def start_demo(settings: Settings) -> Demo:
    """Start simulated nodes, provision the demo tenant, print how to call the endpoint."""
    settings.home.mkdir(parents=True, exist_ok=True)
    ports = [_free_port() for _ in range(DEMO_NODES)]
    procs = [_start_simulator(p, settings.home, i) for i, p in enumerate(ports)]
    demo = Demo(key="", processes=procs)
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url in urls:
            _wait_healthy(url)
        demo.key = asyncio.run(_provision(settings, urls))
    except BaseException:
        demo.close()
        raise
    base = f"{settings.effective_url}/v1"
    click.echo(
        "\ncicfleet demo: embedded control plane with "
        f"{DEMO_NODES} simulated GPU nodes serving '{DEMO_MODEL}'\n\n"
        f"OPENAI_BASE_URL={base}\nOPENAI_API_KEY={demo.key}\n\n"
        f"curl {base}/chat/completions -H 'Authorization: Bearer {demo.key}' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{DEMO_MODEL}", "messages": '
        '[{"role": "user", "content": "Hello"}]}\'\n'
    )
    return demo
