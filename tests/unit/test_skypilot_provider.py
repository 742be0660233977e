"""The SkyPilot provider against the SDK double: calls, failover, preemption, secrets."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from pathlib import Path

import pytest
import sky
import yaml

from fleet.providers.base import (
    CapacityUnavailable,
    ClusterState,
    LaunchSpec,
    ProviderError,
    ProviderFailure,
)
from fleet.providers.skypilot import (
    DEFAULT_TASKS_DIR,
    SkyPilotProvider,
    map_sky_error,
)
from tests.doubles.skypilot_sdk import FakeSkySDK

TOKEN = "cicboot-very-secret-token"
ENGINE_KEY = "engine-key-of-the-node"


def spec(n: int = 1, **kw: object) -> LaunchSpec:
    base: dict[str, object] = {
        "node_id": f"n{n}",
        "cluster": f"cic-n{n}",
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "region": "aws-us-east-1",
        "envs": {"CIC_AGENT_ADVERTISE_URL": "http://node.test:8000"},
        "secrets": {"bootstrap_token": TOKEN, "engine_key": ENGINE_KEY},
    }
    base.update(kw)
    return LaunchSpec(**base)  # type: ignore[arg-type]


@pytest.fixture
def sdk() -> FakeSkySDK:
    return FakeSkySDK()


@pytest.fixture
def provider(sdk: FakeSkySDK) -> SkyPilotProvider:
    return SkyPilotProvider(sdk=sdk, control_url="https://cp.test")


# -- task files ------------------------------------------------------------------------------

TASK_FILES = sorted(DEFAULT_TASKS_DIR.glob("*.yaml"))


def test_task_files_cover_four_regions_on_two_clouds() -> None:
    clouds = set()
    for path in TASK_FILES:
        task = sky.Task.from_yaml(str(path))
        clouds |= {str(r.cloud) for r in task.resources}
    assert len(TASK_FILES) >= 4
    assert len(clouds) >= 2


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.stem)
def test_task_file_has_what_the_provider_relies_on(path: Path) -> None:
    task = sky.Task.from_yaml(str(path))
    raw = yaml.safe_load(path.read_text())
    region = path.stem
    # Several fallbacks, all spot by default, all in the file's one region, each with a GPU.
    resources = list(task.resources)
    assert len(resources) >= 2
    assert isinstance(raw["resources"].get("ordered") or raw["resources"].get("any_of"), list)
    assert all(r.use_spot for r in resources)
    assert len({(str(r.cloud), r.region) for r in resources}) == 1
    assert len({r.zone for r in resources}) >= 2
    assert len({next(iter(r.accelerators)) for r in resources}) >= 2
    # Only the agent's gate is open to the world; vLLM listens on loopback behind it.
    assert all(r.ports == ["8001"] for r in resources)
    assert task.envs["CIC_AGENT_GATE_PORT"] == "8001"
    assert '--host 127.0.0.1 --port "$VLLM_PORT"' in task.run
    # The node's identity comes in as envs; the token only as a declared secret.
    assert task.envs["CIC_AGENT_REGION"] == region
    assert {"CIC_AGENT_MODEL", "CIC_AGENT_CONTROL_URL", "CIC_AGENT_CLUSTER"} <= set(task.envs)
    assert task.envs["CIC_AGENT_INTERRUPTION"] == region.split("-")[0]  # aws or gcp notices
    # The gateway reaches the node at the address its cloud gives it, not 127.0.0.1.
    assert task.envs["CIC_AGENT_ADVERTISE"] == f"{region.split('-')[0]}-public"
    assert raw["secrets"] == {"CIC_AGENT_BOOTSTRAP_TOKEN": None, "CIC_AGENT_ENGINE_KEY": None}
    assert "CIC_AGENT_BOOTSTRAP_TOKEN" not in task.envs
    # vLLM pinned in setup; run starts vLLM on the model and the agent.
    assert "vllm==" in task.setup
    assert 'vllm serve "$CIC_AGENT_MODEL"' in task.run and "cicfleet agent" in task.run


# -- launch ----------------------------------------------------------------------------------


async def test_launch_calls_the_sdk_as_on_a_real_cloud(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    up = await provider.launch(spec())
    assert up.state is ClusterState.UP
    assert (up.region, up.zone, up.spot) == ("aws-us-east-1", "us-east-1a", True)
    assert sdk.launches() == [{"cluster_name": "cic-n1", "retry_until_up": False}]
    landed = sdk.clusters["cic-n1"]
    envs = landed.task_envs
    assert envs["CIC_AGENT_MODEL"] == "Qwen/Qwen2.5-7B-Instruct"
    assert envs["CIC_AGENT_CLUSTER"] == "cic-n1"
    assert envs["CIC_AGENT_CONTROL_URL"] == "https://cp.test"
    assert envs["CIC_AGENT_SPOT"] == "true" and envs["CIC_AGENT_INTERRUPTION"] == "aws"
    assert envs["CIC_AGENT_ADVERTISE_URL"] == "http://node.test:8000"
    assert landed.task_secrets == {
        "CIC_AGENT_BOOTSTRAP_TOKEN": TOKEN,
        "CIC_AGENT_ENGINE_KEY": ENGINE_KEY,
    }
    assert TOKEN not in envs.values() and ENGINE_KEY not in envs.values()


async def test_zone_gpu_and_on_demand_narrow_the_candidates(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    up = await provider.launch(spec(zone="us-east-1b", gpu="A10G", spot=False))
    assert sdk.clusters["cic-n1"].task_envs["CIC_AGENT_INTERRUPTION"] == "none"
    res = sdk.clusters["cic-n1"].resources
    assert (res.zone, res.accelerators, res.use_spot) == ("us-east-1b", {"A10G": 1}, False)
    assert up.spot is False


async def test_capacity_fails_over_inside_the_task_then_reports_where_it_tried(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    sdk.no_capacity = {"us-east-1a", "us-east-1b"}
    up = await provider.launch(spec(1))
    assert up.zone == "us-east-1c"
    sdk.no_capacity |= {"us-east-1c", "us-east-1d"}
    with pytest.raises(CapacityUnavailable) as info:
        await provider.launch(spec(2))
    assert "aws/us-east-1/us-east-1d" in info.value.tried
    assert "cic-n2" not in sdk.clusters


async def test_quota_everywhere_needs_an_operator(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    sdk.quota_zones = {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"}
    with pytest.raises(ProviderFailure) as info:
        await provider.launch(spec())
    assert info.value.code == "provider_quota"


@pytest.mark.parametrize("where", ["launch", "get"])
async def test_errors_are_mapped_from_launch_and_from_get(
    provider: SkyPilotProvider, sdk: FakeSkySDK, where: str
) -> None:
    err = sky.exceptions.NoCloudAccessError("no cloud enabled")
    setattr(sdk, f"{where}_error", err)
    with pytest.raises(ProviderFailure) as info:
        await provider.launch(spec())
    assert info.value.__cause__ is err


async def test_api_server_unreachable_is_transient(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    sdk.launch_error = sky.exceptions.ApiServerConnectionError("http://127.0.0.1:1")
    with pytest.raises(ProviderError) as info:
        await provider.launch(spec())
    assert type(info.value) is ProviderError


async def test_in_flight_launch_shows_pending_and_is_not_launched_twice(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    sdk.gate = threading.Event()
    first = asyncio.create_task(provider.launch(spec()))
    for _ in range(200):
        if sdk.launches():
            break
        await asyncio.sleep(0.01)
    assert [(s.cluster, s.state) for s in await provider.status()] == [
        ("cic-n1", ClusterState.PENDING)
    ]
    sdk.gate.set()
    await first
    await provider.launch(spec())
    assert len(sdk.launches()) == 1


async def test_cancelled_launch_cancels_the_request_on_the_server(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    sdk.gate = threading.Event()
    task = asyncio.create_task(provider.launch(spec()))
    for _ in range(200):
        if sdk.launches():
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sdk.gate.set()
    assert [name for name, _ in sdk.calls if name == "api_cancel"] == ["api_cancel"]


# -- preemption, teardown ----------------------------------------------------------------------


async def test_preempted_cluster_vanishes_or_turns_stopped_and_relaunch_replaces_it(
    provider: SkyPilotProvider, sdk: FakeSkySDK
) -> None:
    await provider.launch(spec(1))
    await provider.launch(spec(2))
    sdk.preempt("cic-n1")
    sdk.preempt("cic-n2", stop=True)
    assert [(s.cluster, s.state) for s in await provider.status()] == [
        ("cic-n2", ClusterState.STOPPED)
    ]
    up = await provider.launch(spec(2))
    assert up.state is ClusterState.UP
    assert ("down", {"cluster_name": "cic-n2", "purge": False}) in sdk.calls
    assert sdk.clusters["cic-n2"].status is sky.ClusterStatus.UP


async def test_status_lists_only_our_clusters(provider: SkyPilotProvider, sdk: FakeSkySDK) -> None:
    await provider.launch(spec(1))
    await provider.launch(spec(2, cluster="someone-elses"))
    assert [s.cluster for s in await provider.status()] == ["cic-n1"]
    refresh = [kw["refresh"] for name, kw in sdk.calls if name == "status"]
    assert set(refresh) == {sky.StatusRefreshMode.AUTO}


async def test_launch_without_a_token_is_an_operator_error(
    provider: SkyPilotProvider,
) -> None:
    with pytest.raises(ProviderFailure):
        await provider.launch(spec(secrets={}))


async def test_unknown_region_is_an_operator_error(provider: SkyPilotProvider) -> None:
    with pytest.raises(ProviderFailure):
        await provider.launch(spec(region="mars-1"))


# -- secrets ----------------------------------------------------------------------------------


async def test_token_never_reaches_a_log_or_a_yaml_dump(
    provider: SkyPilotProvider,
    sdk: FakeSkySDK,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("to_yaml_config writes secrets in plain text")

    monkeypatch.setattr(sky.Task, "to_yaml_config", refuse)
    caplog.set_level(logging.DEBUG)
    sdk.no_capacity = {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"}
    with pytest.raises(CapacityUnavailable) as info:
        await provider.launch(spec())
    assert TOKEN not in caplog.text
    assert TOKEN not in str(info.value) and TOKEN not in repr(spec())


# -- configuration and error mapping -------------------------------------------------------------


def test_without_an_api_server_the_provider_refuses_to_start_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SKYPILOT_API_SERVER_ENDPOINT", raising=False)
    loaded: list[bool] = []
    p = SkyPilotProvider(sdk_loader=lambda: loaded.append(True))
    with pytest.raises(ProviderFailure):
        p.build_task(spec())
    assert loaded == []


def test_configured_api_server_is_handed_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYPILOT_API_SERVER_ENDPOINT", raising=False)
    fake = FakeSkySDK()
    p = SkyPilotProvider(api_server="http://127.0.0.1:46580", sdk_loader=lambda: fake)
    p.build_task(spec())
    import os

    assert os.environ["SKYPILOT_API_SERVER_ENDPOINT"] == "http://127.0.0.1:46580"


def test_every_sky_exception_maps_to_a_provider_error() -> None:
    """A new SkyPilot exception class still lands in our tree (never escapes raw)."""
    for name, cls in vars(sky.exceptions).items():
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        try:
            exc = cls.__new__(cls)
            Exception.__init__(exc, name)
        except TypeError:
            continue
        mapped = map_sky_error(exc, cluster="c")
        assert isinstance(mapped, ProviderError), name


def test_double_matches_the_real_sdk_signatures() -> None:
    for name in ("launch", "down", "status", "get", "api_cancel"):
        real = inspect.signature(getattr(sky, name)).parameters
        fake = inspect.signature(getattr(FakeSkySDK, name)).parameters
        for param in fake:
            if param in ("self", "kw"):
                continue
            assert param in real, f"{name}({param}) is not in the real SDK"
        assert next(iter(real)) == next(p for p in fake if p != "self"), name


def test_the_provider_module_does_not_import_sky() -> None:
    """``import sky`` costs ~1.7 s and 160 MB: the control plane pays it on first use only."""
    import subprocess
    import sys

    code = (
        "import sys, fleet.providers.skypilot as p; p.SkyPilotProvider(api_server='http://x'); "
        "print('sky' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_task_zones_lists_each_regions_zones_without_skypilot() -> None:
    from fleet.providers.skypilot import task_zones

    zones = task_zones()
    assert zones["aws-us-east-1"][:3] == [
        ("aws-us-east-1", "us-east-1a"),
        ("aws-us-east-1", "us-east-1b"),
        ("aws-us-east-1", "us-east-1c"),
    ]
    assert set(zones) == {p.stem for p in TASK_FILES}
    assert all(len(z) >= 2 for z in zones.values())
