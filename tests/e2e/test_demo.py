"""``cicfleet serve --demo`` (what ``make run`` starts) gives a working OpenAI endpoint backed
by local simulated GPU nodes that the fleet manager launches, and leaves nothing behind."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import ControlPlane, start_control_plane, stop

pytestmark = pytest.mark.e2e


def _printed(log: Path, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", log.read_text(), re.M)
    assert match, f"{name} not printed:\n{log.read_text()[-2000:]}"
    return match.group(1)


def _ready_nodes(cp: ControlPlane, want: int, timeout: float = 45) -> list[dict]:
    end = time.monotonic() + timeout
    nodes: list[dict] = []
    while time.monotonic() < end:
        status = json.loads(cp.cli("status", "--json").stdout)
        nodes = [n for n in status["nodes"] if n["state"] == "ready"]
        if len(nodes) >= want:
            return nodes
        time.sleep(0.5)
    raise AssertionError(f"only {len(nodes)} ready nodes: {cp.log.read_text()[-2000:]}")


def _local_processes(home: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(home).encode() in env + cmd and b"serve" not in cmd:
            pids.append(int(proc.name))
    return pids


def test_demo_prints_a_working_endpoint(tmp_path: Path) -> None:
    cp = start_control_plane(tmp_path, "--demo")
    home = Path(cp.env["CIC_HOME"])
    try:
        base_url = _printed(cp.log, "OPENAI_BASE_URL")
        key = _printed(cp.log, "OPENAI_API_KEY")
        assert base_url == f"{cp.url}/v1"
        assert "curl " in cp.log.read_text()
        _ready_nodes(cp, 2)

        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["demo-llm"]
        reply = client.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "Hello"}], max_tokens=16
        )
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        assert '"demo"' in cp.cli("tenants", "list", "--json").stdout
    finally:
        stop(cp.proc)

    deadline = time.monotonic() + 10
    while _local_processes(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _local_processes(home) == [], "demo nodes outlived the demo"

    # A restart reuses the demo key and brings fresh nodes up again.
    cp2 = start_control_plane(tmp_path, "--demo")
    try:
        assert _printed(cp2.log, "OPENAI_API_KEY") == key
        _ready_nodes(cp2, 2)
        client = openai.OpenAI(base_url=f"{cp2.url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "again"}], max_tokens=8
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    finally:
        stop(cp2.proc)
