"""Prometheus instruments of the gateway, in a registry of their own (one per control plane,
so tests can build many). Labelled children are cached: ``labels()`` takes a lock and builds
a tuple each call, which the request path does not need to pay twice."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class GatewayMetrics:
    """Requests, latency, time to first token, tokens, upstream errors and requests in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "cic_requests", "Requests served", ["model", "endpoint", "status"], registry=r
        )
        self._latency = Histogram(
            "cic_request_seconds",
            "Request latency, arrival to last byte",
            ["model", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._ttft = Histogram(
            "cic_ttft_seconds",
            "Time to first token of streamed requests",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self._tokens = Counter("cic_tokens", "Tokens served", ["model", "kind"], registry=r)
        self._upstream_errors = Counter(
            "cic_upstream_errors", "Failed node requests", ["model", "kind"], registry=r
        )
        self._in_flight = Gauge("cic_in_flight", "Requests in flight", ["model"], registry=r)
        self.billing_export_failures = Counter(
            "cic_billing_export_failures", "Stripe meter exports that failed", registry=r
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def in_flight(self, model: str) -> Any:
        """The gauge of requests in flight for ``model`` (``inc``/``dec`` around a request)."""
        return self._child(self._in_flight, model)

    def request_done(
        self,
        *,
        model: str,
        endpoint: str,
        status: int,
        latency_s: float,
        ttft_s: float | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        self._child(self._requests, model, endpoint, str(status)).inc()
        self._child(self._latency, model, endpoint).observe(latency_s)
        if ttft_s is not None:
            self._child(self._ttft, model).observe(ttft_s)
        if prompt_tokens:
            self._child(self._tokens, model, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self._child(self._tokens, model, "completion").inc(completion_tokens)

    def upstream_error(self, model: str, kind: str) -> None:
        self._child(self._upstream_errors, model, kind).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
