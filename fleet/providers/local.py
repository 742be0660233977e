"""The local provider: nodes as processes on this machine (the embedded default).

A "cluster" is a directory ``CIC_HOME/local-nodes/<cluster>`` holding a ``node.json`` with the
pids of its two processes: the engine (the vLLM simulator, or a real ``vllm serve`` command
when ``CIC_LOCAL_ENGINE_COMMAND`` is set) and the node agent. The processes do not outlive the
machine, but they outlive the control plane: a restarted control plane finds them by their
pid files (checking each pid's start time, so a recycled pid is not mistaken for ours) and
never launches a cluster twice. The bootstrap token reaches the agent through its environment
only; ``node.json`` never holds it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from fleet.logs import get_logger
from fleet.providers.base import ClusterState, ClusterStatus, LaunchSpec, ProviderFailure

log = get_logger("cicfleet.providers.local")

STATE_FILE = "node.json"
NOTICE_FILE = "spot-notice"
"""Writing a number of seconds here makes the node's agent report a spot notice."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (None when gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


@dataclass
class LocalProvider:
    """Starts, finds and stops local nodes; safe to call again after a crash."""

    home: Path
    control_url: str
    prefix: str = "cic"
    engine_command: str | None = None
    python: str = sys.executable
    agent_env: dict[str, str] = field(default_factory=dict)
    name: str = "local"
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.home / "local-nodes"

    def notice_file(self, cluster: str) -> Path:
        return self.root / cluster / NOTICE_FILE

    # ---- the Provider protocol ------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> ClusterStatus:
        return await asyncio.to_thread(self._launch, spec)

    async def terminate(self, cluster: str) -> None:
        await asyncio.to_thread(self._terminate, cluster)

    async def status(self) -> list[ClusterStatus]:
        return await asyncio.to_thread(self._status_all)

    # ---- work, in a thread ----------------------------------------------------------------

    def _read(self, cluster: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.root / cluster / STATE_FILE).read_text()))
        except (OSError, ValueError):
            return None

    def _alive(self, proc: dict[str, Any]) -> bool:
        pid = int(proc["pid"])
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            return False
        return _start_time(pid) == proc["start"]

    def _status_of(self, cluster: str, state: dict[str, Any]) -> ClusterStatus:
        engine, agent = self._alive(state["engine"]), self._alive(state["agent"])
        if engine and agent:
            phase, error = ClusterState.UP, None
        elif not engine and not agent:
            phase, error = ClusterState.STOPPED, "engine and agent processes are gone"
        else:
            phase = ClusterState.FAILED
            error = f"{'agent' if engine else 'engine'} process is gone"
        return ClusterStatus(
            cluster=cluster,
            state=phase,
            region=state.get("region"),
            zone=state.get("zone"),
            spot=state.get("spot"),
            price_per_hour=Decimal(0),
            error=error,
        )

    def _spawn(self, argv: list[str], log_path: Path, env: dict[str, str]) -> dict[str, Any]:
        with log_path.open("ab") as out:
            child = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._children[child.pid] = child
        start = None
        for _ in range(50):  # /proc appears with the fork; wait a moment if it lags
            start = _start_time(child.pid)
            if start is not None:
                break
            time.sleep(0.01)
        return {"pid": child.pid, "start": start}

    def _launch(self, spec: LaunchSpec) -> ClusterStatus:
        existing = self._read(spec.cluster)
        if existing is not None:
            status = self._status_of(spec.cluster, existing)
            if status.state is ClusterState.UP:
                return status
            self._terminate(spec.cluster)
        token = spec.secrets.get("bootstrap_token")
        if not token:
            raise ProviderFailure("launch spec has no bootstrap token")
        workdir = self.root / spec.cluster
        workdir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        if self.engine_command:
            argv = shlex.split(self.engine_command.format(model=spec.model, port=port))
        else:
            argv = [self.python, "-m", "agent.simulator", "--port", str(port)]
            argv += ["--model", spec.model]
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("CIC_")}
        engine = self._spawn(argv, workdir / "engine.log", base_env)
        agent_env = {
            **base_env,
            **self.agent_env,
            **{k: v for k, v in spec.envs.items()},
            "CIC_AGENT_CONTROL_URL": self.control_url,
            "CIC_AGENT_BOOTSTRAP_TOKEN": token,
            "CIC_AGENT_CLUSTER": spec.cluster,
            "CIC_AGENT_MODEL": spec.model,
            "CIC_AGENT_ENGINE_URL": f"http://127.0.0.1:{port}",
            "CIC_AGENT_REGION": spec.region,
            "CIC_AGENT_SPOT": "true" if spec.spot else "false",
            "CIC_AGENT_INTERRUPTION": "file" if spec.spot else "none",
            "CIC_AGENT_NOTICE_FILE": str(workdir / NOTICE_FILE),
        }
        engine_key = spec.secrets.get("engine_key")
        if engine_key:  # the gateway reaches the node through its gate, as on a cloud
            agent_env["CIC_AGENT_GATE_PORT"] = str(_free_port())
            agent_env["CIC_AGENT_GATE_HOST"] = "127.0.0.1"
            agent_env["CIC_AGENT_ENGINE_KEY"] = engine_key
        if spec.zone:
            agent_env["CIC_AGENT_ZONE"] = spec.zone
        if spec.gpu:
            agent_env["CIC_AGENT_GPU"] = spec.gpu
        agent = self._spawn([self.python, "-m", "agent"], workdir / "agent.log", agent_env)
        state = {
            "cluster": spec.cluster,
            "node_id": spec.node_id,
            "model": spec.model,
            "region": spec.region,
            "zone": spec.zone,
            "spot": spec.spot,
            "port": port,
            "engine": engine,
            "agent": agent,
        }
        tmp = workdir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(workdir / STATE_FILE)
        log.info("local node started", extra={"cluster": spec.cluster, "port": port})
        return self._status_of(spec.cluster, state)

    def _stop(self, proc: dict[str, Any], sig: signal.Signals) -> None:
        if self._alive(proc):
            try:
                os.kill(int(proc["pid"]), sig)
            except ProcessLookupError:
                pass

    def _terminate(self, cluster: str) -> None:
        state = self._read(cluster)
        if state is not None:
            procs = [state["agent"], state["engine"]]
            for proc in procs:
                self._stop(proc, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and any(self._alive(p) for p in procs):
                time.sleep(0.05)
            for proc in procs:
                self._stop(proc, signal.SIGKILL)
                child = self._children.pop(int(proc["pid"]), None)
                if child is not None:
                    try:
                        child.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        log.warning("local node process did not exit", extra={"cluster": cluster})
        shutil.rmtree(self.root / cluster, ignore_errors=True)

    def _status_all(self) -> list[ClusterStatus]:
        if not self.root.exists():
            return []
        found = []
        for path in sorted(self.root.iterdir()):
            if not path.name.startswith(f"{self.prefix}-"):
                continue
            state = self._read(path.name)
            if state is None:  # a launch that died before writing its state: nothing runs
                found.append(ClusterStatus(cluster=path.name, state=ClusterState.FAILED))
                continue
            found.append(self._status_of(path.name, state))
        return found
