"""One contract for every Provider implementation: what the reconciler relies on.

Add a factory to PROVIDERS to run another implementation through the same suite.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleet.providers.base import ClusterState, LaunchSpec, Provider
from tests.doubles.skypilot_sdk import FakeSkySDK

STANDIN = Path(__file__).parents[1] / "e2e" / "standin_engine.py"


def _skypilot(home: Path) -> Provider:
    from fleet.providers.skypilot import SkyPilotProvider

    return SkyPilotProvider(sdk=FakeSkySDK())


def _local(home: Path) -> Provider:
    """Real processes: a stand-in engine and the agent (which retries a closed port)."""
    from fleet.providers.local import LocalProvider

    return LocalProvider(
        home,
        control_url="http://127.0.0.1:9",
        engine_command=f"{sys.executable} {STANDIN} --port {{port}} --model {{model}}",
    )


PROVIDERS: dict[str, Callable[[Path], Provider]] = {"skypilot": _skypilot, "local": _local}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    made = PROVIDERS[request.param](tmp_path)
    yield made

    async def cleanup() -> None:
        for cluster in await made.status():
            await made.terminate(cluster.cluster)

    asyncio.run(cleanup())


def _spec(n: int = 1) -> LaunchSpec:
    return LaunchSpec(
        node_id=f"n{n}",
        cluster=f"cic-n{n}",
        model="m",
        region="aws-us-east-1",
        secrets={"bootstrap_token": "t"},
    )


def test_is_a_provider(provider: Provider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name


async def test_launch_brings_the_cluster_up_and_status_lists_it(provider: Provider) -> None:
    up = await provider.launch(_spec())
    assert up.cluster == "cic-n1" and up.state is ClusterState.UP
    assert [s.cluster for s in await provider.status()] == ["cic-n1"]


async def test_launch_again_is_idempotent(provider: Provider) -> None:
    await provider.launch(_spec())
    again = await provider.launch(_spec())
    assert again.state is ClusterState.UP
    assert len(await provider.status()) == 1


async def test_terminate_removes_and_is_idempotent(provider: Provider) -> None:
    await provider.launch(_spec(1))
    await provider.launch(_spec(2))
    await provider.terminate("cic-n1")
    await provider.terminate("cic-n1")
    await provider.terminate("cic-never")
    assert [s.cluster for s in await provider.status()] == ["cic-n2"]
