"""A double of the SkyPilot 0.14 client SDK surface the provider uses, with no API server.

Network calls (``launch``, ``down``, ``status``, ``get``, ``api_cancel``) are simulated; the
rest is SkyPilot's own code (``Task``, ``Resources``, ``exceptions``, ``ClusterStatus``,
``StatusRefreshMode``, and the real ``StatusResponse`` records), so the provider parses task
files and catches exceptions exactly as it would against a real server.

Like the real SDK, ``launch`` returns a request id at once and errors may surface either from
the submitting call or from ``get``. Launches walk the task's candidate resources in order,
failing over zone by zone when a zone has no capacity, and can be held open with a gate to
test in-flight launches. Clusters can be preempted (vanish or turn STOPPED).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import sky
from sky.schemas.api.responses import StatusResponse


@dataclass
class FakeCluster:
    name: str
    resources: Any  # the sky.Resources it landed on
    status: Any = sky.ClusterStatus.UP
    launched_at: int = 0
    task_envs: dict[str, str] = field(default_factory=dict)
    task_secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class _Request:
    name: str
    run: Any  # callable producing the result or raising
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


class FakeSkySDK:
    """Stands in for the ``sky`` module. Knobs: ``no_capacity`` (zones), ``quota_zones``,
    ``launch_error`` (raised by ``launch()`` itself), ``get_error`` (raised by ``get``),
    ``gate`` (an Event every launch waits on), ``launch_seconds`` (real delay per launch)."""

    Task = sky.Task
    Resources = sky.Resources
    exceptions = sky.exceptions
    ClusterStatus = sky.ClusterStatus
    StatusRefreshMode = sky.StatusRefreshMode

    def __init__(self) -> None:
        self.clusters: dict[str, FakeCluster] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.no_capacity: set[str] = set()
        self.quota_zones: set[str] = set()
        self.launch_error: BaseException | None = None
        self.get_error: BaseException | None = None
        self.gate: threading.Event | None = None
        self.launch_seconds = 0.0
        self._ids = itertools.count(1)
        self._requests: dict[str, _Request] = {}
        self._lock = threading.Lock()

    # -- the SDK surface ---------------------------------------------------------------------

    def launch(
        self, task: Any, cluster_name: str | None = None, retry_until_up: bool = False, **kw: Any
    ) -> str:
        self.calls.append(
            ("launch", {"cluster_name": cluster_name, "retry_until_up": retry_until_up, **kw})
        )
        if self.launch_error is not None:
            raise self.launch_error
        return self._submit("launch", lambda: self._provision(task, cluster_name))

    def down(self, cluster_name: str, purge: bool = False, **kw: Any) -> str:
        self.calls.append(("down", {"cluster_name": cluster_name, "purge": purge}))
        return self._submit("down", lambda: self._down(cluster_name))

    def status(
        self,
        cluster_names: list[str] | None = None,
        refresh: Any = sky.StatusRefreshMode.NONE,
        all_users: bool = False,
        **kw: Any,
    ) -> str:
        self.calls.append(("status", {"cluster_names": cluster_names, "refresh": refresh}))
        return self._submit("status", lambda: self._records(cluster_names))

    def get(self, request_id: str) -> Any:
        req = self._requests[request_id]
        if self.get_error is not None and req.name == "launch":
            raise self.get_error
        result = req.run()
        if req.cancelled:
            raise sky.exceptions.RequestCancelled(f"request {request_id} cancelled")
        return result

    def api_cancel(self, request_ids: Any = None, all_users: bool = False, **kw: Any) -> str:
        ids = [request_ids] if isinstance(request_ids, str) else list(request_ids or [])
        self.calls.append(("api_cancel", {"request_ids": ids}))
        for rid in ids:
            if rid in self._requests:
                self._requests[rid].cancelled = True
        return self._submit("api_cancel", lambda: ids)

    # -- what tests do to the cloud ----------------------------------------------------------

    def preempt(self, name: str, *, stop: bool = False) -> None:
        """A spot preemption: the cluster vanishes, or (``stop``) the cloud stops it."""
        if stop:
            self.clusters[name].status = sky.ClusterStatus.STOPPED
        else:
            del self.clusters[name]

    def launches(self) -> list[dict[str, Any]]:
        return [kw for name, kw in self.calls if name == "launch"]

    # -- internals ---------------------------------------------------------------------------

    def _submit(self, name: str, run: Any) -> str:
        rid = f"req-{next(self._ids)}"
        self._requests[rid] = _Request(name=name, run=run)
        return rid

    def _provision(self, task: Any, name: str) -> tuple[int, Any]:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.launch_seconds:
            time.sleep(self.launch_seconds)
        history: list[Exception] = []
        for res in task.resources:
            if res.zone in self.quota_zones:
                history.append(
                    sky.exceptions.ResourcesUnavailableError(
                        f"Failed to acquire resources in {res.zone}: "
                        "VcpuLimitExceeded: quota exceeded"
                    )
                )
                continue
            if res.zone in self.no_capacity:
                history.append(
                    sky.exceptions.ResourcesUnavailableError(
                        f"Failed to acquire resources in {res.zone}: InsufficientInstanceCapacity"
                    )
                )
                continue
            with self._lock:
                self.clusters[name] = FakeCluster(
                    name=name,
                    resources=res,
                    launched_at=int(time.time()),
                    task_envs=dict(task.envs),
                    task_secrets={k: v.get_secret_value() for k, v in task.secrets.items()},
                )
            return 1, SimpleNamespace(launched_resources=res, cluster_name=name)
        raise sky.exceptions.ResourcesUnavailableError(
            f"Failed to provision all possible launchable resources for {name}",
            failover_history=history,
        )

    def _down(self, name: str) -> None:
        with self._lock:
            if name not in self.clusters:
                raise sky.exceptions.ClusterDoesNotExist(f"Cluster {name!r} does not exist.")
            del self.clusters[name]

    def _records(self, names: list[str] | None) -> list[StatusResponse]:
        with self._lock:
            clusters = [c for c in self.clusters.values() if names is None or c.name in names]
        return [
            StatusResponse(
                name=c.name,
                launched_at=c.launched_at,
                handle=SimpleNamespace(launched_resources=c.resources),
                status=c.status,
                autostop=-1,
                to_down=False,
                cluster_hash=f"h-{c.name}",
                cluster_ever_up=True,
                user_hash="u",
                user_name="cicfleet",
                workspace="default",
                is_managed=False,
                nodes=1,
                cloud=str(c.resources.cloud),
                region=c.resources.region,
            )
            for c in clusters
        ]
