"""The fleet end to end with real processes: a control plane, local nodes (agent + engine
stand-in) launched by the reconciler, kills, drains, spot notices and a rogue registration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

ADMIN = "e2e-admin-token-0123456789"
BEAT = 0.3
CICFLEET = str(Path(sys.executable).with_name("cicfleet"))
SLOW_TOKENS = 150  # at 20 ms per token: a request of about 3 s


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


class ControlPlane:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CIC_")},
            "CIC_HOME": str(home),
            "CIC_PORT": str(self.port),
            "CIC_URL": self.url,
            "CIC_ADMIN_TOKEN": ADMIN,
            "CIC_HEARTBEAT_INTERVAL": str(BEAT),
            "CIC_RECONCILE_INTERVAL": "0.5",
            "CIC_DRAIN_TIMEOUT": "20",
            "CIC_LOG_FORMAT": "json",
            "CIC_LOCAL_ENGINE_COMMAND": f"{sys.executable} -m agent.simulator --port {{port}} "
            "--model {model} --ttft-ms 5 --itl-ms 20",
        }
        self.http = httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
        )
        home.mkdir(parents=True, exist_ok=True)
        log = (home / "control.log").open("ab")
        self.proc = subprocess.Popen([CICFLEET, "serve"], env=self.env, stdout=log, stderr=log)
        wait_for(self._up, 30, "control plane")
        # the pro plan: the free plan's 4 concurrent requests would get in the way here
        self.http.post("/admin/tenants/", json={"name": "acme", "plan": "pro"}).raise_for_status()
        created = self.http.post("/admin/tenants/acme/keys", json={})
        created.raise_for_status()
        self.key = created.json()["key"]

    def openai(self) -> Any:
        import openai

        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0)

    def add_model(self, model: str) -> None:
        self.http.post("/admin/models/", json={"name": model}).raise_for_status()

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"control plane exited; see {self.home / 'control.log'}")
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def cli(self, *args: str) -> Any:
        out = subprocess.run(
            [CICFLEET, *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def nodes(self, model: str) -> list[dict[str, Any]]:
        return self.http.get("/admin/fleet/status", params={"model": model}).json()["nodes"]

    def ready(self, model: str) -> list[dict[str, Any]]:
        return [n for n in self.nodes(model) if n["state"] == "ready"]

    def node_state(self, node: str) -> dict[str, Any]:
        return json.loads((self.home / "local-nodes" / node / "node.json").read_text())

    def stop(self) -> None:
        self.http.delete("/admin/fleet/pools")
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        root = self.home / "local-nodes"
        for state_file in root.glob("*/node.json") if root.exists() else []:
            state = json.loads(state_file.read_text())
            for proc in (state["agent"], state["engine"]):
                try:
                    os.kill(proc["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("fleet") / "cic")
    try:
        yield plane
    finally:
        plane.stop()


def engine_running(cp: ControlPlane, node: dict[str, Any]) -> int:
    """What the node's engine itself reports (behind the node's gate, on its own port)."""
    port = cp.node_state(node["cluster"])["port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("vllm:num_requests_running"))
    return int(float(line.rsplit(" ", 1)[1]))


def launch(cp: ControlPlane, model: str, replicas: int = 2) -> list[dict[str, Any]]:
    cp.add_model(model)
    pool = cp.cli("launch", model, "--replicas", str(replicas), "--spot")
    assert pool["replicas"] == replicas
    return wait_for(lambda: len(cp.ready(model)) == replicas and cp.ready(model), 30, "ready")


def test_launch_status_and_down(cp: ControlPlane) -> None:
    nodes = launch(cp, "m-basic")
    status = cp.cli("status", "m-basic")
    assert status["pools"][0]["ready"] == 2
    # A node serves the gateway, and nobody else: its gate wants the node's engine key.
    reply = cp.openai().chat.completions.create(
        model="m-basic", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.usage.completion_tokens == 2
    chat = {"model": "m-basic", "messages": [{"role": "user", "content": "hi"}]}
    for n in status["nodes"]:
        assert httpx.post(f"{n['url']}/v1/chat/completions", json=chat).status_code == 401
        assert "engine_key" not in n
    assert {n["provider"] for n in status["nodes"]} == {"local"}
    assert all(n["spot"] and n["last_heartbeat_s"] < 2 for n in status["nodes"])
    cp.cli("down", "m-basic")
    wait_for(lambda: not cp.nodes("m-basic"), 20, "pool down")
    root = cp.home / "local-nodes"
    wait_for(lambda: not any((root / n["cluster"]).exists() for n in nodes), 20, "teardown")


def test_killed_engine_costs_no_request_and_is_replaced(cp: ControlPlane) -> None:
    victim, survivor = launch(cp, "m-kill")
    client = cp.openai()
    results: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                r = client.chat.completions.create(
                    model="m-kill", messages=[{"role": "user", "content": "hi"}], max_tokens=3
                )
                results.append(r.choices[0].message.content or "")
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(results) >= 20, 20, "traffic flowing")
        engine_pid = cp.node_state(victim["cluster"])["engine"]["pid"]
        os.kill(engine_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def victim_out() -> bool:
            states = {n["id"]: n["state"] for n in cp.nodes("m-kill")}
            return states.get(victim["id"]) != "ready"

        wait_for(victim_out, 10, "victim out of ready")
        assert time.monotonic() - killed_at <= 3 * BEAT + 1.0  # + one status poll of slack
        served_after_kill = len(results)
        wait_for(lambda: len(results) >= served_after_kill + 20, 20, "traffic after the kill")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []  # non-streamed requests retried on the survivor
    ready = wait_for(
        lambda: (
            len(cp.ready("m-kill")) == 2
            and victim["id"] not in {n["id"] for n in cp.ready("m-kill")}
            and cp.ready("m-kill")
        ),
        30,
        "replacement ready",
    )
    assert survivor["id"] in {n["id"] for n in ready}


def test_drain_lets_in_flight_finish_and_takes_no_new_requests(cp: ControlPlane) -> None:
    node, other = launch(cp, "m-drain")
    client = cp.openai()
    slow: list[str] = []

    def slow_request() -> None:
        r = client.chat.completions.create(
            model="m-drain", messages=[{"role": "user", "content": "x"}], max_tokens=SLOW_TOKENS
        )
        slow.append(r.choices[0].finish_reason)

    threads = [threading.Thread(target=slow_request) for _ in range(2)]  # one per node
    for t in threads:
        t.start()
    wait_for(lambda: all(n["in_flight"] == 1 for n in cp.nodes("m-drain")), 5, "both busy")
    drained = cp.cli("drain", node["id"])
    assert drained["state"] == "draining"
    medium = [
        threading.Thread(
            target=lambda: client.chat.completions.create(
                model="m-drain", messages=[{"role": "user", "content": "y"}], max_tokens=50
            )
        )
        for _ in range(4)
    ]
    for t in medium:
        t.start()
    time.sleep(0.5)  # the four are generating now (about 1 s each)
    assert engine_running(cp, node) == 1  # only the request it already had
    assert engine_running(cp, other) == 5
    for t in medium:
        t.join(30)
    assert {n["id"]: n for n in cp.nodes("m-drain")}[node["id"]]["state"] == "draining"
    for t in threads:
        t.join(30)
    assert slow == ["length", "length"]  # the drained node finished its request
    wait_for(lambda: node["id"] not in {n["id"] for n in cp.nodes("m-drain")}, 10, "terminated")
    wait_for(lambda: len(cp.ready("m-drain")) == 2, 30, "pool back to 2")
    assert other["id"] in {n["id"] for n in cp.ready("m-drain")}


def test_spot_notice_drains_and_replaces_before_the_node_goes(cp: ControlPlane) -> None:
    node, _ = launch(cp, "m-spot")
    client = cp.openai()
    busy = [  # one long request per node, so the drain has work to finish
        threading.Thread(
            target=lambda: client.chat.completions.create(
                model="m-spot", messages=[{"role": "user", "content": "x"}], max_tokens=SLOW_TOKENS
            )
        )
        for _ in range(2)
    ]
    for t in busy:
        t.start()
    wait_for(lambda: all(n["in_flight"] == 1 for n in cp.nodes("m-spot")), 5, "both busy")
    (cp.home / "local-nodes" / node["cluster"] / "spot-notice").write_text("20")

    def replacement_while_old_alive() -> bool:
        nodes = {n["id"]: n for n in cp.nodes("m-spot")}
        old = nodes.get(node["id"])
        fresh = [n for n in nodes.values() if n["id"] != node["id"] and n["age_s"] < 15]
        return bool(old and old["state"] == "draining" and old["notice"] and fresh)

    wait_for(replacement_while_old_alive, 10, "replacement while draining")
    for t in busy:
        t.join(30)
    wait_for(lambda: len(cp.ready("m-spot")) == 2, 30, "replacement ready")
    wait_for(lambda: node["id"] not in {n["id"] for n in cp.nodes("m-spot")}, 10, "old one gone")


def test_registration_with_a_bad_token_is_refused(cp: ControlPlane) -> None:
    launch(cp, "m-rogue", replicas=1)
    cluster = cp.nodes("m-rogue")[0]["cluster"]
    resp = httpx.post(
        f"{cp.url}/internal/register",
        json={"cluster": cluster, "model": "m-rogue", "url": "http://127.0.0.1:1"},
        headers={"authorization": "Bearer not-the-token"},
    )
    assert resp.status_code == 401
    assert httpx.post(f"{cp.url}/internal/register", json={}).status_code in (400, 401)
    assert cp.nodes("m-rogue")[0]["url"] != "http://127.0.0.1:1"
