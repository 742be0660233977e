"""The node agent's pieces: vLLM metrics parsing, spot watchers (respx), the agent's talk
with the control plane (respx), SIGTERM drain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import respx

from agent.address import AddressUnavailable
from agent.interruptions import AwsWatcher, AzureWatcher, FileWatcher, GcpWatcher, watcher
from agent.metrics import parse_metrics
from agent.node_agent import AgentConfig, NodeAgent, Refused
from fleet import FakeClock

METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 2.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 4.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.25
vllm:gpu_cache_usage_perc{engine="0",model_name="llama"} 0.99
vllm:num_requests_running_total 100
"""


def test_metrics_sum_label_sets_and_prefer_the_new_kv_name() -> None:
    load = parse_metrics(METRICS)
    assert (load.running, load.waiting, load.kv_cache) == (5, 4, 0.25)


def test_metrics_fall_back_to_the_old_kv_name() -> None:
    load = parse_metrics('vllm:gpu_cache_usage_perc{model_name="x"} 0.5\n')
    assert load.kv_cache == 0.5 and load.idle


def test_metrics_tolerate_garbage() -> None:
    assert parse_metrics('vllm:num_requests_running{a="b"} nan-ish\nnonsense\n').running == 0


@respx.mock
async def test_aws_instance_action_is_a_notice_with_its_deadline() -> None:
    respx.put("http://169.254.169.254/latest/api/token").respond(200, text="tok")
    route = respx.get("http://169.254.169.254/latest/meta-data/spot/instance-action")
    route.respond(404)
    async with httpx.AsyncClient() as http:
        assert await AwsWatcher().check(http, 0.0) is None
        route.respond(200, json={"action": "terminate", "time": "2026-11-26T17:00:00Z"})
        notice = await AwsWatcher().check(http, 0.0)
    assert notice is not None and notice.kind == "aws-spot"
    assert notice.deadline == 1795712400.0
    assert route.calls.last.request.headers["X-aws-ec2-metadata-token"] == "tok"


@respx.mock
async def test_gcp_preempted_flag() -> None:
    route = respx.get("http://metadata.google.internal/computeMetadata/v1/instance/preempted")
    route.respond(200, text="FALSE")
    async with httpx.AsyncClient() as http:
        assert await GcpWatcher().check(http, 100.0) is None
        route.respond(200, text="TRUE")
        notice = await GcpWatcher().check(http, 100.0)
    assert notice is not None and notice.deadline == 130.0
    assert route.calls.last.request.headers["Metadata-Flavor"] == "Google"


@respx.mock
async def test_azure_preempt_event() -> None:
    route = respx.get("http://169.254.169.254/metadata/scheduledevents")
    route.respond(200, json={"Events": [{"EventType": "Reboot"}]})
    async with httpx.AsyncClient() as http:
        assert await AzureWatcher().check(http, 0.0) is None
        route.respond(
            200,
            json={
                "Events": [{"EventType": "Preempt", "NotBefore": "Thu, 26 Nov 2026 17:00:00 GMT"}]
            },
        )
        notice = await AzureWatcher().check(http, 0.0)
    assert notice is not None and notice.deadline == 1795712400.0
    assert route.calls.last.request.headers["Metadata"] == "true"


async def test_file_watcher_and_factory(tmp_path: Path) -> None:
    path = tmp_path / "notice"
    w = watcher("file", notice_file=path)
    assert isinstance(w, FileWatcher) and watcher("none") is None
    async with httpx.AsyncClient() as http:
        assert await w.check(http, 10.0) is None
        path.write_text("25")
        notice = await w.check(http, 10.0)
    assert notice is not None and notice.deadline == 35.0
    with pytest.raises(ValueError):
        watcher("ibm")


def config(**kw: object) -> AgentConfig:
    base = {
        "control_url": "http://cp.test",
        "bootstrap_token": "boot",
        "cluster": "cic-1",
        "model": "m",
        "engine_url": "http://engine.test",
        "drain_timeout": 5.0,
    }
    return AgentConfig(**{**base, **kw})  # type: ignore[arg-type]


@respx.mock
async def test_registers_heartbeats_load_and_drains_on_stop() -> None:
    running = {"n": 2}
    respx.get("http://engine.test/health").respond(200)
    respx.get("http://engine.test/metrics").mock(
        side_effect=lambda _: httpx.Response(
            200, text=f"vllm:num_requests_running {running['n']}\nvllm:num_requests_waiting 1\n"
        )
    )
    reg = respx.post("http://cp.test/internal/register").respond(
        200, json={"node_id": "node_1", "node_token": "nt", "heartbeat_interval": 0.5}
    )
    beat = respx.post("http://cp.test/internal/heartbeats/node_1").respond(200, json={})
    draining = respx.post("http://cp.test/internal/nodes/node_1/draining").respond(200, json={})
    dereg = respx.post("http://cp.test/internal/nodes/node_1/deregister").respond(200, json={})
    clock = FakeClock()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        agent = NodeAgent(config(), http, clock=clock)
        task = asyncio.create_task(agent.run(stop))
        for _ in range(50):
            await asyncio.sleep(0)
            if beat.call_count >= 2:
                break
        assert reg.calls.last.request.headers["authorization"] == "Bearer boot"
        body = json.loads(beat.calls.last.request.content)
        assert body["running"] == 2 and body["waiting"] == 1 and body["healthy"] is True
        assert beat.calls.last.request.headers["authorization"] == "Bearer nt"
        stop.set()
        for _ in range(20):
            await asyncio.sleep(0)
        assert draining.called and not dereg.called  # still 2 running
        running["n"] = 0
        respx.get("http://engine.test/metrics").respond(200, text="")
        await asyncio.wait_for(task, 5)
    assert dereg.called


@respx.mock
async def test_refused_registration_is_fatal() -> None:
    respx.get("http://engine.test/health").respond(200)
    respx.post("http://cp.test/internal/register").respond(401, json={})
    async with httpx.AsyncClient() as http:
        with pytest.raises(Refused):
            await NodeAgent(config(), http, clock=FakeClock()).run(asyncio.Event())


@respx.mock
async def test_a_notice_is_reported_at_once(tmp_path: Path) -> None:
    notice = respx.post("http://cp.test/internal/nodes/node_1/notice").respond(200, json={})
    (tmp_path / "n").write_text("30")
    async with httpx.AsyncClient() as http:
        agent = NodeAgent(config(), http, clock=FakeClock(), watcher=FileWatcher(tmp_path / "n"))
        agent.node_id, agent._token = "node_1", "nt"
        await agent._watch_forever()
    assert json.loads(notice.calls.last.request.content)["kind"] == "simulated"


@pytest.mark.parametrize(
    ("how", "url", "answer", "advertised"),
    [
        (
            "aws-public",
            "http://169.254.169.254/latest/meta-data/public-ipv4",
            "203.0.113.7",
            "http://203.0.113.7:8000",
        ),
        (
            "aws-private",
            "http://169.254.169.254/latest/meta-data/local-ipv4",
            "10.0.3.4",
            "http://10.0.3.4:8000",
        ),
        (
            "gcp-public",
            "http://metadata.google.internal/computeMetadata/v1/instance/"
            "network-interfaces/0/access-configs/0/external-ip",
            "198.51.100.2",
            "http://198.51.100.2:8000",
        ),
        (
            "azure-private",
            "http://169.254.169.254/metadata/instance/network/interface/0/ipv4/"
            "ipAddress/0/privateIpAddress",
            "fd00::5",
            "http://[fd00::5]:8000",
        ),
    ],
)
@respx.mock
async def test_cloud_node_registers_the_address_its_cloud_gives_it(
    how: str, url: str, answer: str, advertised: str
) -> None:
    """A cloud node registers an address the control plane can reach, not 127.0.0.1."""
    respx.put("http://169.254.169.254/latest/api/token").respond(200, text="tok")
    metadata = respx.get(url).respond(200, text=answer + "\n")
    respx.get("http://127.0.0.1:8000/health").respond(200)
    reg = respx.post("http://cp.test/internal/register").respond(
        200, json={"node_id": "node_1", "node_token": "nt"}
    )
    cfg = config(engine_url="http://127.0.0.1:8000", advertise=how)
    async with httpx.AsyncClient() as http:
        await NodeAgent(cfg, http, clock=FakeClock()).register()
    assert json.loads(reg.calls.last.request.content)["url"] == advertised
    assert metadata.called


@respx.mock
async def test_node_without_the_asked_address_refuses_to_register() -> None:
    respx.put("http://169.254.169.254/latest/api/token").respond(200, text="tok")
    respx.get("http://169.254.169.254/latest/meta-data/public-ipv4").respond(404)
    reg = respx.post("http://cp.test/internal/register")
    cfg = config(engine_url="http://127.0.0.1:8000", advertise="aws-public")
    async with httpx.AsyncClient() as http:
        with pytest.raises(AddressUnavailable):
            await NodeAgent(cfg, http, clock=FakeClock()).register()
    assert not reg.called  # an unreachable node is never put in the fleet


@respx.mock
async def test_explicit_advertise_url_wins_and_bad_source_is_refused() -> None:
    reg = respx.post("http://cp.test/internal/register").respond(
        200, json={"node_id": "node_1", "node_token": "nt"}
    )
    cfg = config(advertise="aws-public", advertise_url="http://node.test:9000")
    async with httpx.AsyncClient() as http:
        await NodeAgent(cfg, http, clock=FakeClock()).register()
    assert json.loads(reg.calls.last.request.content)["url"] == "http://node.test:9000"
    with pytest.raises(ValueError, match="aws-public"):
        config(advertise="aws")
