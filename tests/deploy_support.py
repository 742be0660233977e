"""Reading the deployment files (docker/) the way Docker Compose, Prometheus and Grafana would,
for the tests that prove the stack without a Docker engine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
DASHBOARDS = DOCKER / "grafana" / "dashboards"
CONTROL_PLANE_DOCKERFILE = "docker/control-plane.Dockerfile"

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    """The compose file with YAML anchors and merge keys resolved (as Compose does)."""
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` substitution."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        got = env.get(name)
        if op in (":-", "-"):
            return got if got else (arg or "")
        if op in (":?", "?"):
            if not got:
                raise KeyError(f"{name}: {arg}")
            return got
        return got or ""

    return _VAR.sub(sub, value)


def control_plane_services(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Services running the control-plane image (built from its Dockerfile)."""
    return {
        name: svc
        for name, svc in data["services"].items()
        if (svc.get("build") or {}).get("dockerfile") == CONTROL_PLANE_DOCKERFILE
    }


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def _walk_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str):
                yield value
            else:
                yield from _walk_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_exprs(item)


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of every provisioned dashboard (panels and variables)."""
    out: list[str] = []
    for path in dashboard_files():
        out.extend(_walk_exprs(json.loads(path.read_text())))
    return out


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_exprs() -> list[str]:
    return [str(rule["expr"]) for rule in alert_rules()]


_METRIC = re.compile(r"(?<![A-Za-z0-9_:])(cic_[a-z0-9_]+)")


def metric_names(exprs: list[str]) -> set[str]:
    """``cic_*`` series names the expressions select (recording rules ``cic:...`` excluded)."""
    return {m for expr in exprs for m in _METRIC.findall(expr)}


_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "gauge": ("",),
    "untyped": ("",),
    "info": ("_info",),
}


def exported_names(exposition: str) -> set[str]:
    """Series names a Prometheus scrape of this exposition can produce, from its TYPE lines
    (a labelled family with no sample yet is still declared there)."""
    names: set[str] = set()
    for family, kind in _TYPE.findall(exposition):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    return names
