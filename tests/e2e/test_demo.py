"""``cicfleet serve --demo`` (what ``make run`` starts) gives a working OpenAI endpoint."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import start_control_plane, stop

pytestmark = pytest.mark.e2e


def _printed(log: Path, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", log.read_text(), re.M)
    assert match, f"{name} not printed:\n{log.read_text()[-2000:]}"
    return match.group(1)


def test_demo_prints_a_working_endpoint(tmp_path: Path) -> None:
    cp = start_control_plane(tmp_path, "--demo")
    try:
        base_url = _printed(cp.log, "OPENAI_BASE_URL")
        key = _printed(cp.log, "OPENAI_API_KEY")
        assert base_url == f"{cp.url}/v1"
        assert "curl " in cp.log.read_text()

        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["demo-llm"]
        reply = client.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "Hello"}], max_tokens=16
        )
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens > 0

        # The local CLI reaches the embedded control plane with no token configured.
        listed = cp.cli("tenants", "list", "--json").stdout
        assert '"demo"' in listed
    finally:
        stop(cp.proc)

    # A restart reuses the demo key and replaces the old simulated nodes.
    cp2 = start_control_plane(tmp_path, "--demo")
    try:
        assert _printed(cp2.log, "OPENAI_API_KEY") == key
        nodes = cp2.cli("nodes", "list", "--json").stdout
        assert nodes.count('"ready"') == 2
        client = openai.OpenAI(base_url=f"{cp2.url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "again"}], max_tokens=8
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    finally:
        stop(cp2.proc)
        subprocess.run(["pkill", "-f", f"agent.simulator.*{tmp_path}"], check=False)
