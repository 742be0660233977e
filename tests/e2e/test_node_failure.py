"""A GPU node dies mid-traffic: non-streamed requests still succeed (retried on another)."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.e2e.conftest import MODEL, Plane

pytestmark = pytest.mark.e2e


def test_sigkilled_node_does_not_fail_requests(plane: Plane) -> None:
    c = openai.OpenAI(base_url=plane.base_url, api_key=plane.key, max_retries=0)
    done = 0
    lock = threading.Lock()
    killed = threading.Event()

    def one(_: int) -> str:
        nonlocal done
        out = c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "still there?"}], max_tokens=20
        )
        with lock:
            done += 1
            if done == 40 and not killed.is_set():
                plane.nodes[0].send_signal(signal.SIGKILL)
                killed.set()
        return out.choices[0].message.content

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(160)))
    assert killed.is_set() and plane.nodes[0].wait(5) == -signal.SIGKILL
    assert len(answers) == 160 and all("simulated" in a for a in answers)
    metrics = httpx.get(f"{plane.url}/metrics").text
    retried = [
        line for line in metrics.splitlines() if line.startswith("cic_upstream_errors_total{")
    ]
    assert retried and sum(float(line.rsplit(" ", 1)[1]) for line in retried) >= 1
