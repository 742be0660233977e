"""Real processes: simulated GPU nodes and a control plane started with ``cicfleet serve``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
MODEL = "sim-llm"
BIN = Path(sys.executable).parent


def start_simulator(port: int, *, model: str = MODEL, ttft_ms: float = 5, itl_ms: float = 1):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.simulator",
            "--port",
            str(port),
            "--model",
            model,
            "--ttft-ms",
            str(ttft_ms),
            "--itl-ms",
            str(itl_ms),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Plane:
    """A running control plane with two simulated nodes and two tenants."""

    url: str
    database_url: str
    key: str
    suspended_key: str
    nodes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


async def _seed(env: dict[str, str], node_urls: list[str]) -> tuple[str, str]:
    from fleet import TenantStatus, build_services, load_settings

    settings = load_settings(home=env["CIC_HOME"], database_url=env["CIC_DATABASE_URL"])
    async with build_services(settings, migrate=True) as svc:
        await svc.catalog.create_model(MODEL, context_length=4096, actor="test")
        await svc.tenancy.create_tenant("acme", plan="pro", actor="test")  # limits out of the way
        _, key = await svc.tenancy.create_key("acme", actor="test")
        await svc.tenancy.create_tenant("late-payer", actor="test")
        _, suspended = await svc.tenancy.create_key("late-payer", actor="test")
        await svc.tenancy.set_tenant_status("late-payer", TenantStatus.SUSPENDED, actor="test")
        for url in node_urls:
            await svc.nodes.add_static(MODEL, url, actor="test")
    return key, suspended


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    home = tmp_path_factory.mktemp("cic")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
    port = free_port()
    env.update(
        CIC_HOME=str(home),
        CIC_DATABASE_URL=f"sqlite+aiosqlite:///{home / 'cic.db'}",
        CIC_PORT=str(port),
        CIC_HOST="127.0.0.1",
        CIC_USAGE_FLUSH_SECONDS="0.1",
        CIC_LOG_LEVEL="WARNING",
    )
    sims = [start_simulator(free_port()) for _ in range(2)]
    try:
        node_urls = [f"http://127.0.0.1:{p.args[4]}" for p in sims]
        key, suspended = asyncio.run(_seed(env, node_urls))
        server = subprocess.Popen([str(BIN / "cicfleet"), "serve"], cwd=ROOT, env=env)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc=server)
            yield Plane(
                url=f"http://127.0.0.1:{port}",
                database_url=env["CIC_DATABASE_URL"],
                key=key,
                suspended_key=suspended,
                nodes=sims,
            )
        finally:
            stop(server)
    finally:
        for proc in sims:
            stop(proc)


@dataclass
class ControlPlane:
    """A bare control plane process (no nodes) and the environment its CLI needs."""

    url: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(BIN / "cicfleet"), *args], env=self.env, text=True, capture_output=True, timeout=60
        )
        if check and out.returncode != 0:
            raise AssertionError(f"cicfleet {' '.join(args)} failed: {out.stderr}")
        return out


def start_control_plane(
    tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None
) -> ControlPlane:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
    env.update(
        {
            "CIC_HOME": str(tmp_path / "home"),
            "CIC_PORT": str(port),
            "CIC_HOST": "127.0.0.1",
            "CIC_LOG_FORMAT": "json",
        }
    )
    env.update(extra_env or {})
    log = tmp_path / f"serve-{port}.log"
    proc = subprocess.Popen(
        [str(BIN / "cicfleet"), "serve", *args],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    env["CIC_URL"] = url
    try:
        wait_http(f"{url}/health", proc=proc, timeout=30)
    except (RuntimeError, TimeoutError) as exc:
        stop(proc)
        raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
    return ControlPlane(url=url, env=env, proc=proc, log=log)


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path)
    yield cp
    stop(cp.proc)
