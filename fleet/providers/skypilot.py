"""The SkyPilot provider: one SkyPilot cluster per GPU node, launched from ``tasks/<region>.yaml``.

It talks to a SkyPilot API server through SkyPilot 0.14's client SDK, where every call returns
a request id that ``sky.get`` resolves (blocking until the request is done). Those calls block
for minutes, so they run in worker threads, never on the event loop. ``import sky`` costs about
1.7 s and 160 MB, so it happens on first use, not when the control plane starts.

We ask for ``retry_until_up=False``: SkyPilot tries the task's candidates (GPU types and zones
of one region) once each, then gives up, and the fleet manager chooses the next place itself
(another region, on-demand) with its preemption history in mind.

SkyPilot errors are translated here, exhaustively, into the provider error tree:
``ResourcesUnavailableError`` → :class:`CapacityUnavailable` (unless every attempt hit a quota,
which only an operator can raise), credential/permission/validation errors →
:class:`ProviderFailure`, ``ClusterDoesNotExist`` on teardown → already gone.

The bootstrap token travels as a SkyPilot *secret* and is never logged; the task object that
carries it is never serialised with ``to_yaml_config()`` (which writes secrets in plain text).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fleet.logs import get_logger
from fleet.providers.base import (
    CapacityUnavailable,
    ClusterState,
    ClusterStatus,
    LaunchSpec,
    ProviderError,
    ProviderFailure,
)

log = get_logger("cicfleet.providers.skypilot")

SKYPILOT_ENDPOINT_ENV = "SKYPILOT_API_SERVER_ENDPOINT"
DEFAULT_TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
DEFAULT_CLUSTER_PREFIX = "cic-"

# Exception class names (from ``sky.exceptions``) that retrying elsewhere will not cure.
_OPERATOR_ERRORS = (
    "NoCloudAccessError",
    "InvalidCloudCredentials",
    "InvalidCloudConfigs",
    "CloudUserIdentityError",
    "ClusterOwnerIdentityMismatchError",
    "PermissionDeniedError",
    "NoWorkspaceAccessError",
    "ApiServerAuthenticationError",
    "APIVersionMismatchError",
    "APINotSupportedError",
    "InvalidClusterNameError",
    "ResourcesMismatchError",
    "NotSupportedError",
    "ProvisionPrechecksError",
    "UserRequestRejectedByPolicy",
    "InvalidSkyPilotConfigError",
)
# Errors after which the same call may succeed later (API server restarting or unreachable).
_TRANSIENT_ERRORS = (
    "ApiServerConnectionError",
    "ServerTemporarilyUnavailableError",
    "RequestCancelled",
    "RequestInterruptedError",
    "NetworkError",
)
_QUOTA_WORDS = ("quota", "limitexceeded", "vcpulimitexceeded")


def _load_sky() -> Any:
    import sky

    return sky


def _is_quota(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {_short(exc)}".lower().replace(" ", "")
    return any(word in text for word in _QUOTA_WORDS)


def map_sky_error(exc: BaseException, *, cluster: str, tried: Iterable[str] = ()) -> ProviderError:
    """Translate an exception raised by ``sky.launch``/``sky.get``/``sky.down`` into our tree.

    Classes are matched by name along the MRO, so this module needs no ``sky`` import; a test
    walks ``sky.exceptions`` to prove every class lands somewhere on purpose.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "ResourcesUnavailableError" in names:
        history: list[BaseException] = list(getattr(exc, "failover_history", []) or [])
        if history and all(_is_quota(e) for e in history):
            return ProviderFailure(
                f"{cluster}: quota exhausted in every candidate ({len(history)} tried)",
                code="provider_quota",
            )
        places = list(tried)
        return CapacityUnavailable(
            f"{cluster}: no capacity ({len(history)} attempts failed): {_short(exc)}",
            tried=places,
        )
    if names & set(_OPERATOR_ERRORS):
        return ProviderFailure(f"{cluster}: {type(exc).__name__}: {_short(exc)}")
    if names & set(_TRANSIENT_ERRORS):
        return ProviderError(f"{cluster}: {type(exc).__name__}: {_short(exc)}")
    return ProviderFailure(f"{cluster}: unexpected {type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException, limit: int = 300) -> str:
    try:
        text = " ".join(str(exc).split())
    except Exception:  # some SkyPilot errors render from attributes that may be unset
        text = type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _place(res: Any) -> str:
    parts = [str(res.cloud).lower() if res.cloud else "?", res.region or "?"]
    if res.zone:
        parts.append(res.zone)
    return "/".join(parts)


def task_zones(tasks_dir: Path = DEFAULT_TASKS_DIR) -> dict[str, list[tuple[str, str | None]]]:
    """Zones each region's task file can land in, in the file's order, read without SkyPilot
    (``infra: cloud/region/zone`` of the ``ordered``/``any_of`` candidates): the places the
    autoscaler spreads a pool over."""
    import yaml

    out: dict[str, list[tuple[str, str | None]]] = {}
    for path in sorted(tasks_dir.glob("*.yaml")):
        resources = (yaml.safe_load(path.read_text()) or {}).get("resources") or {}
        candidates = resources.get("ordered") or resources.get("any_of") or [resources]
        zones: list[tuple[str, str | None]] = []
        for cand in candidates:
            parts = str(cand.get("infra", "")).split("/")
            place = (path.stem, parts[2] if len(parts) > 2 else None)
            if place not in zones:
                zones.append(place)
        out[path.stem] = zones
    return out


class SkyPilotProvider:
    """Provider backed by a SkyPilot API server; ``sdk`` defaults to the ``sky`` package."""

    name = "skypilot"

    def __init__(
        self,
        *,
        api_server: str | None = None,
        tasks_dir: Path | None = None,
        cluster_prefix: str = DEFAULT_CLUSTER_PREFIX,
        control_url: str | None = None,
        sdk: Any = None,
        sdk_loader: Callable[[], Any] = _load_sky,
    ) -> None:
        self._api_server = api_server
        self._tasks_dir = tasks_dir or DEFAULT_TASKS_DIR
        self._prefix = cluster_prefix
        self._control_url = control_url  # what nodes call back; the task file's otherwise
        self._sdk = sdk
        self._sdk_loader = sdk_loader
        self._launching: dict[str, LaunchSpec] = {}

    # -- SDK access --------------------------------------------------------------------------

    def _client(self) -> Any:
        """The SDK, imported on first use and pointed at the configured API server.

        SkyPilot reads its endpoint from ``SKYPILOT_API_SERVER_ENDPOINT`` (cached after the
        first request), so ours is put there before the first call. Without any endpoint the
        SDK would start a local API server of its own; we refuse instead.
        """
        if self._sdk is None:
            if self._api_server:
                os.environ[SKYPILOT_ENDPOINT_ENV] = self._api_server
            elif not os.environ.get(SKYPILOT_ENDPOINT_ENV):
                raise ProviderFailure(
                    "no SkyPilot API server configured: set CIC_SKYPILOT_API_SERVER "
                    f"or {SKYPILOT_ENDPOINT_ENV}",
                    code="provider_not_configured",
                )
            self._sdk = self._sdk_loader()
        return self._sdk

    def task_file(self, region: str) -> Path:
        return self._tasks_dir / f"{region}.yaml"

    def build_task(self, spec: LaunchSpec) -> Any:
        """The SkyPilot task for ``spec``: the region's file, narrowed to the asked zone, GPU
        and pricing model, with the node's envs and its bootstrap token as a secret."""
        sky = self._client()
        path = self.task_file(spec.region)
        if not path.is_file():
            raise ProviderFailure(f"no task file for region {spec.region!r} ({path})")
        task = sky.Task.from_yaml(str(path))
        candidates = [
            r
            for r in task.resources
            if (spec.zone is None or r.zone == spec.zone)
            and (spec.gpu is None or spec.gpu in (r.accelerators or {}))
        ]
        if not candidates:
            raise CapacityUnavailable(
                f"{spec.cluster}: {path.name} has no candidate for zone={spec.zone} gpu={spec.gpu}",
                tried=[],
            )
        task.set_resources([r.copy(use_spot=spec.spot) for r in candidates])
        token = spec.secrets.get("bootstrap_token")
        if not token:
            raise ProviderFailure(f"{spec.cluster}: launch spec has no bootstrap token")
        # The node agent's own settings (``CIC_AGENT_*``); the token only as a secret.
        envs = {
            "CIC_AGENT_MODEL": spec.model,
            "CIC_AGENT_CLUSTER": spec.cluster,
            "CIC_AGENT_REGION": spec.region,
            "CIC_AGENT_SPOT": "true" if spec.spot else "false",
        }
        if not spec.spot:
            envs["CIC_AGENT_INTERRUPTION"] = "none"
        if spec.zone:
            envs["CIC_AGENT_ZONE"] = spec.zone
        if spec.gpu:
            envs["CIC_AGENT_GPU"] = spec.gpu
        if self._control_url:
            envs["CIC_AGENT_CONTROL_URL"] = self._control_url
        task.update_envs({**envs, **spec.envs})
        task_secrets = {"CIC_AGENT_BOOTSTRAP_TOKEN": token}
        if spec.secrets.get("engine_key"):
            task_secrets["CIC_AGENT_ENGINE_KEY"] = spec.secrets["engine_key"]
        task.update_secrets(task_secrets)
        return task

    # -- Provider protocol -------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> ClusterStatus:
        """Launch ``spec.cluster`` unless it already exists (a restarted control plane asks
        again); a STOPPED leftover (preempted spot) is torn down and launched afresh."""
        existing = await self._status_of(spec.cluster)
        if existing is not None and existing.state in (ClusterState.UP, ClusterState.PENDING):
            return existing
        if existing is not None:
            await self.terminate(spec.cluster)
        sky = self._client()
        task = self.build_task(spec)
        tried = [_place(r) for r in task.resources]
        log.info(
            "launching cluster",
            extra={"cluster": spec.cluster, "region": spec.region, "spot": spec.spot},
        )
        self._launching[spec.cluster] = spec
        try:
            result = await self._request(
                sky,
                lambda: sky.launch(task, cluster_name=spec.cluster, retry_until_up=False),
                cluster=spec.cluster,
                tried=tried,
            )
        finally:
            self._launching.pop(spec.cluster, None)
        handle = result[1] if isinstance(result, tuple) and len(result) > 1 else None
        res = getattr(handle, "launched_resources", None)
        return ClusterStatus(
            cluster=spec.cluster,
            state=ClusterState.UP,
            region=spec.region,
            zone=getattr(res, "zone", None) or spec.zone,
            spot=getattr(res, "use_spot", spec.spot),
        )

    async def terminate(self, cluster: str) -> None:
        sky = self._client()
        try:
            await self._request(sky, lambda: sky.down(cluster), cluster=cluster)
        except ProviderFailure as exc:
            if isinstance(exc.__cause__, sky.exceptions.ClusterDoesNotExist):
                return
            raise

    async def status(self) -> list[ClusterStatus]:
        """Our clusters as SkyPilot sees them, refreshed from the clouds for spot clusters
        (``AUTO``), so a preempted node shows as STOPPED or is absent; launches still in
        flight from this process show as PENDING."""
        sky = self._client()
        records = await self._request(
            sky,
            lambda: sky.status(refresh=sky.StatusRefreshMode.AUTO),
            cluster="*",
        )
        out = {
            rec.name: self._to_status(sky, rec)
            for rec in records
            if rec.name.startswith(self._prefix)
        }
        for name, spec in list(self._launching.items()):
            out.setdefault(
                name,
                ClusterStatus(
                    cluster=name,
                    state=ClusterState.PENDING,
                    region=spec.region,
                    zone=spec.zone,
                    spot=spec.spot,
                ),
            )
        return sorted(out.values(), key=lambda s: s.cluster)

    # -- helpers -----------------------------------------------------------------------------

    async def _status_of(self, cluster: str) -> ClusterStatus | None:
        sky = self._client()
        records = await self._request(
            sky,
            lambda: sky.status(cluster_names=[cluster], refresh=sky.StatusRefreshMode.AUTO),
            cluster=cluster,
        )
        for rec in records:
            if rec.name == cluster:
                return self._to_status(sky, rec)
        return None

    @staticmethod
    def _to_status(sky: Any, rec: Any) -> ClusterStatus:
        states = {
            sky.ClusterStatus.INIT: ClusterState.PENDING,
            sky.ClusterStatus.UP: ClusterState.UP,
            sky.ClusterStatus.STOPPED: ClusterState.STOPPED,
        }
        res = getattr(rec.handle, "launched_resources", None)
        return ClusterStatus(
            cluster=rec.name,
            state=states.get(rec.status, ClusterState.FAILED),
            region=rec.region or getattr(res, "region", None),
            zone=getattr(res, "zone", None),
            spot=getattr(res, "use_spot", None),
        )

    async def _request(
        self, sky: Any, submit: Callable[[], Any], *, cluster: str, tried: Iterable[str] = ()
    ) -> Any:
        """Submit a request and wait for its result in a worker thread; errors from either
        step are mapped. If our caller is cancelled, the request is cancelled on the server
        too, so a shutdown never leaves a launch running that nobody waits for."""
        try:
            request_id = await asyncio.to_thread(submit)
        except Exception as exc:
            raise map_sky_error(exc, cluster=cluster, tried=tried) from exc
        try:
            return await asyncio.to_thread(sky.get, request_id)
        except asyncio.CancelledError:
            await asyncio.to_thread(sky.api_cancel, request_id)
            raise
        except Exception as exc:
            raise map_sky_error(exc, cluster=cluster, tried=tried) from exc


def skypilot_provider(settings: Any) -> SkyPilotProvider | None:
    """The provider when a SkyPilot API server is configured (ours or SkyPilot's own
    variable), else None; clusters are named ``<CIC_CLUSTER_PREFIX>-...`` by the reconciler."""
    if not (settings.skypilot_api_server or os.environ.get(SKYPILOT_ENDPOINT_ENV)):
        return None
    return SkyPilotProvider(
        api_server=settings.skypilot_api_server,
        tasks_dir=settings.skypilot_tasks_dir,
        cluster_prefix=f"{settings.cluster_prefix}-",
        control_url=settings.url,
    )
