"""The compose topology as real processes: PostgreSQL, Redis, the migration run once with the
compose file's own command, then two control-plane replicas started with the compose file's
own command and environment (only addresses, ports and secrets replaced). Both serve, exactly
one leads, and every metric the dashboards and alerts query is in a live ``/metrics``.

Graceful shutdown on the same topology: SIGTERM to the leader refuses new connections, lets
the open stream finish, writes its usage and hands leadership over at once; a stream longer
than ``CIC_SHUTDOWN_GRACE_SECONDS`` is ended with a retryable error and billed for what it
sent."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import REDIS_URL, _require, free_port
from tests.deploy_support import (
    alert_exprs,
    compose,
    control_plane_services,
    dashboard_exprs,
    environment,
    exported_names,
    interpolate,
    metric_names,
)
from tests.e2e.conftest import BIN, MODEL, ROOT, _seed, start_simulator, stop, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

# What a process run of the compose file must replace: addresses, ports, secrets, and keys
# that keep this run apart from others sharing this machine's PostgreSQL and Redis.
REPLACED = {
    "CIC_DATABASE_URL",
    "CIC_REDIS_URL",
    "CIC_ADMIN_TOKEN",
    "CIC_HOME",
    "CIC_HOST",
    "CIC_PORT",
}
ISOLATION = {"CIC_REDIS_PREFIX", "CIC_LEADER_LOCK_ID"}


@dataclass
class Replica:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def leads(self) -> bool | None:
        """Its cic_leader gauge; None when it does not answer."""
        try:
            text = self.metrics()
        except httpx.HTTPError:
            return None
        m = re.search(r"^cic_leader (\S+)$", text, re.MULTILINE)
        assert m, "cic_leader missing from /metrics"
        return float(m.group(1)) == 1.0


@dataclass
class Topology:
    database_url: str
    key: str
    tmp: Path
    base_env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)

    def start(self, name: str, **extra: str) -> Replica:
        svc = compose()["services"]["control-plane-1"]
        command = [str(BIN / "cicfleet"), *svc["command"]]
        port = free_port()
        home = self.tmp / name
        env = {**self.base_env, "CIC_HOME": str(home), "CIC_PORT": str(port), **extra}
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        replica = Replica(name, f"http://127.0.0.1:{port}", proc, log)
        self.replicas.append(replica)
        try:
            wait_http(f"{replica.url}/ready", proc=proc, timeout=30)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        return replica


def _compose_env(database_url: str, prefix: str, lock_id: int) -> dict[str, str]:
    """The control plane's environment exactly as compose.yaml sets it, then addresses,
    ports and secrets of this machine."""
    services = control_plane_services(compose()).values()
    # One environment for every control-plane service (migrate included): a single anchor.
    (svc_env,) = {json.dumps(environment(s), sort_keys=True) for s in services}
    dotenv = {"POSTGRES_PASSWORD": "unused", "CIC_ADMIN_TOKEN": secrets.token_urlsafe(24)}
    values = {k: interpolate(v, dotenv) for k, v in json.loads(svc_env).items()}
    assert REPLACED <= set(values), "compose no longer sets what this test replaces"
    values.update(
        CIC_DATABASE_URL=database_url,
        CIC_REDIS_URL=REDIS_URL,
        CIC_HOST="127.0.0.1",
        CIC_REDIS_PREFIX=prefix,
        CIC_LEADER_LOCK_ID=str(lock_id),
        CIC_LOG_LEVEL="WARNING",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
    env.update(values)
    return env


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_plain(url))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    # 100 ms between tokens: max_tokens sets how long a stream stays open.
    proc = start_simulator(free_port(), itl_ms=100)
    yield f"http://127.0.0.1:{proc.args[4]}"
    stop(proc)


@pytest.fixture(scope="module")
def migrated(pg_url: str, tmp_path_factory: pytest.TempPathFactory, simulator: str) -> str:
    """The database after the compose file's one-shot migration, seeded with a tenant and a
    static node of the simulator."""
    _require("Redis", "127.0.0.1", 6379)
    tmp = tmp_path_factory.mktemp("migrate")
    env = _compose_env(pg_url, "unused", 0)
    env["CIC_HOME"] = str(tmp)
    migrate = compose()["services"]["migrate"]
    out = subprocess.run(
        [str(BIN / "cicfleet"), *migrate["command"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "database at head" in out.stdout
    return pg_url


@pytest.fixture(scope="module")
def seeded_key(migrated: str, simulator: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("seed")
    key, _ = asyncio.run(_seed({"CIC_HOME": str(home), "CIC_DATABASE_URL": migrated}, [simulator]))
    return key


@pytest.fixture
def topology(migrated: str, seeded_key: str, tmp_path: Path) -> Iterator[Topology]:
    env = _compose_env(migrated, f"cictest:{secrets.token_hex(4)}", secrets.randbelow(2**31))
    topo = Topology(migrated, seeded_key, tmp_path, env)
    yield topo
    for replica in topo.replicas:
        stop(replica.proc)


def _chat(url: str, key: str, *, max_tokens: int, request_id: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if request_id:
        headers["x-request-id"] = request_id
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers=headers,
        json={**body, "max_tokens": max_tokens},
        timeout=30,
    )


def _wait(check: object, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _leaders(replicas: list[Replica]) -> list[str]:
    return [r.name for r in replicas if r.leads()]


def test_two_replicas_serve_and_exactly_one_leads(topology: Topology) -> None:
    a = topology.start("control-plane-1")
    b = topology.start("control-plane-2")
    for replica in (a, b):
        resp = _chat(replica.url, topology.key, max_tokens=3)
        assert resp.status_code == 200, resp.text
        assert resp.json()["usage"]["completion_tokens"] == 3
        ready = httpx.get(f"{replica.url}/ready", timeout=5).json()
        assert ready["status"] == "ok"
    _wait(lambda: len(_leaders([a, b])) == 1, 10, "one leader")
    for _ in range(20):  # and it stays one, never two
        assert len(_leaders([a, b])) == 1
        time.sleep(0.1)


def test_dashboards_and_alerts_query_only_exported_metrics(topology: Topology) -> None:
    replica = topology.start("control-plane-1")
    assert _chat(replica.url, topology.key, max_tokens=2).status_code == 200
    streamed = _Stream(replica.url, topology.key, max_tokens=2, request_id="test-ttft")
    streamed.start()
    streamed.join(20)
    assert streamed.lines[-1] == "data: [DONE]"
    exported = exported_names(replica.metrics())
    queried = metric_names(dashboard_exprs()) | metric_names(alert_exprs())
    assert {"cic_requests_total", "cic_leader", "cic_nodes", "cic_fleet_cost_per_hour"} <= queried
    assert queried - exported == set()
    # The TTFT SLO's bucket boundary is one the histogram really has.
    assert re.search(r'^cic_ttft_seconds_bucket\{.*le="2\.0".*\} ', replica.metrics(), re.M)
    # Fleet gauges reflect the registry: the seeded static node is ready.
    text = replica.metrics()
    assert re.search(rf'^cic_nodes\{{.*model="{MODEL}".*state="ready".*\}} 1\.0$', text, re.M)


class _Stream(threading.Thread):
    """A streamed chat completion read in the background, keeping every SSE data line."""

    def __init__(self, url: str, key: str, *, max_tokens: int, request_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.max_tokens, self.request_id = url, key, max_tokens, request_id
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.started_streaming = threading.Event()

    def run(self) -> None:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": self.max_tokens,
            "stream": True,
        }
        headers = {"authorization": f"Bearer {self.key}", "x-request-id": self.request_id}
        try:
            with httpx.stream(
                "POST", f"{self.url}/v1/chat/completions", headers=headers, json=body, timeout=60
            ) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        self.lines.append(line)
                        self.started_streaming.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self.started_streaming.set()

    def _chunks(self) -> list[dict[str, object]]:
        out = []
        for line in self.lines:
            if line != "data: [DONE]":
                event = json.loads(line.removeprefix("data: "))
                if event.get("choices"):
                    out.append(event)
        return out

    @property
    def tokens(self) -> int:
        """Chunks carrying generated text (the simulator sends one word per token)."""
        return sum(1 for c in self._chunks() if c["choices"][0]["delta"].get("content"))  # type: ignore[index]

    @property
    def chunks(self) -> int:
        """Chunks forwarded, the role-only first one included."""
        return len(self._chunks())


def _usage_row(url: str, request_id: str) -> asyncpg.Record | None:
    rows = query(
        url,
        "SELECT status, completion_tokens FROM usage_records WHERE request_id = $1",
        request_id,
    )
    return rows[0] if rows else None


def test_sigterm_finishes_the_stream_and_hands_leadership_over(topology: Topology) -> None:
    a = topology.start("control-plane-1", CIC_SHUTDOWN_GRACE_SECONDS="30")
    _wait(lambda: a.leads(), 10, "the first replica to lead")
    b = topology.start("control-plane-2")
    rid = f"test-{secrets.token_hex(6)}"
    stream = _Stream(a.url, topology.key, max_tokens=50, request_id=rid)  # ~5 s
    stream.start()
    assert stream.started_streaming.wait(10) and stream.error is None

    a.proc.send_signal(signal.SIGTERM)
    took_over = _wait(lambda: b.leads(), 5, "the other replica to lead")
    with pytest.raises(httpx.ConnectError):
        _wait_refused(a.url)
    assert stream.is_alive(), "leadership must move before the stream ends, not after"

    stream.join(30)
    assert stream.error is None, stream.error
    assert stream.lines[-1] == "data: [DONE]"
    assert stream.tokens == 50
    assert a.proc.wait(30) == 0, a.log.read_text()[-2000:]
    row = _usage_row(topology.database_url, rid)
    assert row is not None and (row["status"], row["completion_tokens"]) == (200, 50)
    assert took_over < 5


def _wait_refused(url: str) -> None:
    """Raise ConnectError once the replica refuses connections (within 5 s)."""
    end = time.monotonic() + 5
    while time.monotonic() < end:
        httpx.get(f"{url}/health", timeout=1)
        time.sleep(0.05)


def test_stream_past_the_grace_period_is_ended_and_billed(topology: Topology) -> None:
    a = topology.start("control-plane-1", CIC_SHUTDOWN_GRACE_SECONDS="1")
    rid = f"test-{secrets.token_hex(6)}"
    stream = _Stream(a.url, topology.key, max_tokens=300, request_id=rid)  # ~30 s
    stream.start()
    assert stream.started_streaming.wait(10) and stream.error is None
    time.sleep(0.3)

    started = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    stream.join(20)
    assert not stream.is_alive()
    ended_after = time.monotonic() - started
    assert a.proc.wait(20) == 0, a.log.read_text()[-2000:]

    last = json.loads(stream.lines[-1].removeprefix("data: "))
    assert last["error"]["code"] == "shutting_down"
    assert 1.0 <= ended_after < 6
    assert 0 < stream.tokens < 300
    sent = stream.chunks
    row = _usage_row(topology.database_url, rid)
    assert row is not None and row["status"] == 503
    # Billed for what was sent: at most the one chunk in transit when the stream was ended.
    assert sent <= row["completion_tokens"] <= sent + 1
