"""The local provider with real processes: launch, find again after a restart, failure,
teardown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from fleet.providers.base import ClusterState, LaunchSpec
from fleet.providers.local import LocalProvider

STANDIN = Path(__file__).parents[1] / "e2e" / "standin_engine.py"


def provider(home: Path) -> LocalProvider:
    return LocalProvider(
        home,
        control_url="http://127.0.0.1:9",  # nothing listens: the agent just keeps retrying
        engine_command=f"{sys.executable} {STANDIN} --port {{port}} --model {{model}}",
    )


SPEC = LaunchSpec(
    node_id="node_1", cluster="cic-1", model="m", region="local", secrets={"bootstrap_token": "b"}
)


async def test_launch_restart_find_fail_and_terminate(tmp_path: Path) -> None:
    first = provider(tmp_path)
    up = await first.launch(SPEC)
    assert up.state is ClusterState.UP
    state_file = tmp_path / "local-nodes" / "cic-1" / "node.json"
    assert "b" not in json.loads(state_file.read_text()).values()  # no secret on disk
    pids = json.loads(state_file.read_text())
    try:
        restarted = provider(tmp_path)  # a new control plane process finds the cluster
        assert [s.state for s in await restarted.status()] == [ClusterState.UP]
        again = await restarted.launch(SPEC)
        assert again.state is ClusterState.UP
        assert json.loads(state_file.read_text())["agent"] == pids["agent"]  # not relaunched
        os.kill(pids["engine"]["pid"], signal.SIGKILL)
        for _ in range(100):  # the kill lands within milliseconds
            (status,) = await first.status()
            if status.state is not ClusterState.UP:
                break
            await asyncio.sleep(0.02)
        assert status.state is ClusterState.FAILED and "engine" in (status.error or "")
    finally:
        await first.terminate("cic-1")
    assert await first.status() == []
    await first.terminate("cic-1")  # already gone: not an error
