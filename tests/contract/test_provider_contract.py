"""One contract for every Provider implementation: what the reconciler relies on.

Add a factory to PROVIDERS to run another implementation through the same suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleet.providers.base import ClusterState, LaunchSpec, Provider
from tests.doubles.skypilot_sdk import FakeSkySDK


def _skypilot() -> tuple[Provider, Any]:
    from fleet.providers.skypilot import SkyPilotProvider

    sdk = FakeSkySDK()
    return SkyPilotProvider(sdk=sdk), sdk


PROVIDERS: dict[str, Callable[[], tuple[Provider, Any]]] = {"skypilot": _skypilot}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> Provider:
    return PROVIDERS[request.param]()[0]


def _spec(n: int = 1) -> LaunchSpec:
    return LaunchSpec(
        node_id=f"n{n}",
        cluster=f"cic-n{n}",
        model="m",
        region="aws-us-east-1",
        secrets={"CIC_BOOTSTRAP_TOKEN": "t"},
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
