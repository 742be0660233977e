"""The node agent: runs beside vLLM (or the simulator) on every GPU node.

It waits for the engine to answer ``/health``, registers with the control plane using the
bootstrap token its launcher gave it (scoped to its cluster), then heartbeats engine health
and load every ``heartbeat_interval`` seconds and polls the cloud for a spot interruption
notice, which it reports at once. On SIGTERM it reports draining, waits (bounded) until the
engine has no request running or queued, deregisters and exits.

It speaks to the control plane over HTTP only (httpx: control traffic, a few requests a
second), and never logs its tokens.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.address import ADVERTISE_CHOICES, AddressUnavailable, advertised_url
from agent.gate import start_gate
from agent.interruptions import InterruptionWatcher, Notice, watcher
from agent.metrics import EngineLoad, parse_metrics
from fleet import SYSTEM_CLOCK, Clock, get_logger

AGENT_VERSION = "0.1.0"
log = get_logger("cicfleet.agent")


class AgentConfig(BaseSettings):
    """The agent's configuration, from ``CIC_AGENT_*`` variables (or ``cicfleet agent``
    options). The bootstrap token comes from the environment or a secret, never a file."""

    model_config = SettingsConfigDict(env_prefix="CIC_AGENT_", extra="ignore", frozen=True)

    control_url: str
    bootstrap_token: SecretStr
    cluster: str
    model: str
    engine_url: str = "http://127.0.0.1:8000"
    advertise_url: str | None = Field(default=None, description="URL the gateway should use")
    advertise: str = Field(
        default="engine",
        description="Where the advertised address comes from: engine (the node's entry as is), "
        "or <aws|gcp|azure>-<public|private> (the cloud's instance metadata)",
    )
    region: str | None = None
    zone: str | None = None
    spot: bool | None = None
    gpu: str | None = None
    weight: float = Field(default=1.0, gt=0)
    heartbeat_interval: float | None = Field(default=None, gt=0, description="Override")
    drain_timeout: float = Field(default=60.0, gt=0)
    interruption: str = Field(default="none", description="none, aws, gcp, azure or file")
    notice_file: Path | None = None
    interruption_poll: float = Field(default=2.0, gt=0)
    gate_port: int | None = Field(
        default=None, ge=1, le=65535, description="Public port of the gate (agent/gate.py)"
    )
    gate_host: str = "0.0.0.0"
    engine_key: SecretStr | None = Field(default=None, description="Key the gate asks for")

    @model_validator(mode="after")
    def _gate_needs_key(self) -> AgentConfig:
        if self.gate_port is not None and not self.engine_key:
            raise ValueError("CIC_AGENT_GATE_PORT needs CIC_AGENT_ENGINE_KEY")
        return self

    @property
    def local_url(self) -> str:
        """Where the gateway's requests enter this node, as seen from the node."""
        if self.gate_port is None:
            return self.engine_url
        return f"http://127.0.0.1:{self.gate_port}"

    @field_validator("advertise")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in ADVERTISE_CHOICES:
            raise ValueError(f"must be one of {', '.join(ADVERTISE_CHOICES)}")
        return value


class Refused(Exception):
    """The control plane refused this agent (bad bootstrap token, node terminated)."""


@dataclass
class NodeAgent:
    config: AgentConfig
    http: httpx.AsyncClient
    clock: Clock = SYSTEM_CLOCK
    watcher: InterruptionWatcher | None = None
    node_id: str | None = None
    _token: str | None = None
    _url: str | None = None
    interval: float = 5.0
    notice_sent: bool = False

    # ---- engine ---------------------------------------------------------------------------

    async def engine_healthy(self) -> bool:
        try:
            resp = await self.http.get(f"{self.config.engine_url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def engine_load(self) -> EngineLoad | None:
        try:
            resp = await self.http.get(f"{self.config.engine_url}/metrics", timeout=2.0)
        except httpx.HTTPError:
            return None
        return parse_metrics(resp.text) if resp.status_code == 200 else None

    # ---- control plane --------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._token}"}

    async def _post(
        self, path: str, body: dict[str, object], *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        url = f"{self.config.control_url.rstrip('/')}/internal{path}"
        return await self.http.post(url, json=body, headers=headers)

    async def register(self) -> None:
        c = self.config
        if self._url is None:
            self._url = await advertised_url(
                c.advertise, c.local_url, self.http, explicit=c.advertise_url
            )
        resp = await self._post(
            "/register",
            {
                "cluster": c.cluster,
                "model": c.model,
                "url": self._url,
                "region": c.region,
                "zone": c.zone,
                "spot": c.spot,
                "gpu": c.gpu,
                "weight": c.weight,
                "agent_version": AGENT_VERSION,
            },
            headers={"authorization": f"Bearer {c.bootstrap_token.get_secret_value()}"},
        )
        if resp.status_code in (401, 403):
            raise Refused(f"registration refused (HTTP {resp.status_code})")
        resp.raise_for_status()
        body = resp.json()
        self.node_id, self._token = body["node_id"], body["node_token"]
        self.interval = c.heartbeat_interval or float(body.get("heartbeat_interval", 5.0))
        log.info("registered", extra={"node": self.node_id, "cluster": c.cluster})

    async def heartbeat(self) -> None:
        healthy = await self.engine_healthy()
        load = (await self.engine_load()) if healthy else None
        load = load or EngineLoad()
        resp = await self._post(
            f"/heartbeats/{self.node_id}",
            {
                "healthy": healthy,
                "running": load.running,
                "waiting": load.waiting,
                "kv_cache": load.kv_cache,
                "agent_version": AGENT_VERSION,
            },
            headers=self._auth(),
        )
        if resp.status_code == 401:  # our token was replaced or the node is gone
            await self.register()

    async def report_notice(self, notice: Notice) -> None:
        await self._post(
            f"/nodes/{self.node_id}/notice",
            {"kind": notice.kind, "deadline": notice.deadline},
            headers=self._auth(),
        )
        self.notice_sent = True
        log.warning("interruption notice reported", extra={"kind": notice.kind})

    async def drain_and_leave(self) -> None:
        """SIGTERM: no new requests, let running ones finish (bounded), then deregister."""
        if self.node_id is None:
            return
        try:
            await self._post(f"/nodes/{self.node_id}/draining", {}, headers=self._auth())
        except httpx.HTTPError:
            log.warning("could not report draining")
        deadline = self.clock.monotonic() + self.config.drain_timeout
        while self.clock.monotonic() < deadline:
            load = await self.engine_load()
            if load is None or load.idle:
                break
            await self.clock.sleep(0.2)
        try:
            await self._post(f"/nodes/{self.node_id}/deregister", {}, headers=self._auth())
        except httpx.HTTPError:
            log.warning("could not deregister")
        log.info("left the fleet", extra={"node": self.node_id})

    # ---- loops ----------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except httpx.HTTPError as exc:
                log.warning("heartbeat failed", extra={"error": type(exc).__name__})
            await self.clock.sleep(self.interval)

    async def _watch_forever(self) -> None:
        if self.watcher is None:
            return
        while not self.notice_sent:
            try:
                notice = await self.watcher.check(self.http, self.clock.now())
                if notice is not None:
                    await self.report_notice(notice)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.debug("interruption poll failed", extra={"error": type(exc).__name__})
            await self.clock.sleep(self.config.interruption_poll)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and deregister."""
        while not await self.engine_healthy():
            if stop.is_set():
                return
            await self.clock.sleep(0.2)
        backoff = 0.2
        while True:
            try:
                await self.register()
                break
            except httpx.HTTPError:
                if stop.is_set():
                    return
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        tasks = [asyncio.create_task(self._beat_forever())]
        tasks.append(asyncio.create_task(self._watch_forever()))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.drain_and_leave()

    async def run_with_gate(self, stop: asyncio.Event) -> None:
        """:meth:`run`, with the gate open in front of the engine when configured (it stays
        open while the node drains, so requests in flight finish)."""
        c = self.config
        if c.gate_port is None or c.engine_key is None:
            await self.run(stop)
            return
        runner = await start_gate(
            c.engine_url, c.engine_key.get_secret_value(), host=c.gate_host, port=c.gate_port
        )
        try:
            await self.run(stop)
        finally:
            await runner.cleanup()


async def serve(config: AgentConfig) -> int:
    """Run an agent until SIGTERM/SIGINT; the process exit code (1 when refused)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(timeout=10.0) as http:
        agent = NodeAgent(
            config,
            http,
            watcher=watcher(config.interruption, notice_file=config.notice_file),
        )
        try:
            await agent.run_with_gate(stop)
        except (Refused, AddressUnavailable) as exc:
            log.error("agent cannot join the fleet", extra={"reason": str(exc)})
            return 1
    return 0
