"""Load figures scraped from vLLM's Prometheus ``/metrics``.

Only the three figures routing and autoscaling need are read; every label set of a metric
is summed (one engine may report per model name). vLLM renamed ``gpu_cache_usage_perc`` to
``kv_cache_usage_perc``; the new name wins, the old one is the fallback for older engines.
"""

from __future__ import annotations

from dataclasses import dataclass

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:kv_cache_usage_perc"
KV_CACHE_OLD = "vllm:gpu_cache_usage_perc"
_WANTED = (RUNNING, WAITING, KV_CACHE, KV_CACHE_OLD)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0

    @property
    def idle(self) -> bool:
        return self.running == 0 and self.waiting == 0


def parse_metrics(text: str) -> EngineLoad:
    """Sum the wanted samples of a Prometheus text exposition; unknown lines are ignored."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name_end = min((i for i in (line.find("{"), line.find(" ")) if i > 0), default=-1)
        if name_end < 0:
            continue
        name = line[:name_end]
        if name not in _WANTED:
            continue
        rest = line[name_end:]
        parts = (rest.rsplit("}", 1)[-1] if rest.startswith("{") else rest).split()
        try:
            value = float(parts[0])
        except (IndexError, ValueError):
            continue
        sums[name] = sums.get(name, 0.0) + value
    kv = sums.get(KV_CACHE, sums.get(KV_CACHE_OLD, 0.0))
    return EngineLoad(
        running=int(sums.get(RUNNING, 0)),
        waiting=int(sums.get(WAITING, 0)),
        kv_cache=min(1.0, max(0.0, kv)),
    )
