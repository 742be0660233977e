"""Fleet commands: ``launch``, ``scale``, ``status``, ``drain``, ``down`` (clients of the admin
API) and ``agent`` (runs the node agent on this machine)."""

from __future__ import annotations

from urllib.parse import quote

import click

from api.cli.common import client, emit, fail, json_option

NODE_COLUMNS = (
    "id",
    "model",
    "state",
    "provider",
    "region",
    "zone",
    "spot",
    "running",
    "waiting",
    "in_flight",
    "kv_cache",
    "ejected_for",
    "age_s",
    "price_per_hour",
    "last_error",
)
POOL_COLUMNS = ("model", "provider", "regions", "replicas", "ready", "nodes", "spot", "routing")


@click.command()
@click.argument("model")
@click.option("--region", "regions", multiple=True, help="Region (repeat for several).")
@click.option("--replicas", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--spot/--on-demand", default=True, show_default=True)
@click.option("--provider", type=click.Choice(["local", "skypilot"]), default="local")
@click.option("--gpu", default=None, help="GPU type, e.g. L4 or A100.")
@click.option("--routing", default=None, help="Routing strategy (default: least-loaded).")
@json_option
def launch(
    model: str,
    regions: tuple[str, ...],
    replicas: int,
    spot: bool,
    provider: str,
    gpu: str | None,
    routing: str | None,
    as_json: bool,
) -> None:
    """Serve MODEL on REPLICAS nodes (creates or replaces its pool)."""
    body = {
        "model": model,
        "replicas": replicas,
        "regions": list(regions) or None,
        "spot": spot,
        "provider": provider,
        "gpu": gpu,
        "routing": routing,
    }
    emit(client().post("/admin/fleet/pools", json=body), as_json=as_json, columns=POOL_COLUMNS[:7])


SCALING_COLUMNS = (
    "model",
    "policy",
    "min_replicas",
    "max_replicas",
    "target",
    "ttft_slo_ms",
    "upscale_delay_s",
    "downscale_delay_s",
    "use_spot",
    "base_on_demand",
)
JOB_COLUMNS = ("name", "leader", "runs", "failures", "last_started_at", "last_ok", "last_error")


@click.command()
@click.argument("model")
@click.option("--replicas", type=click.IntRange(min=0), default=None, help="Fixed replicas.")
@click.option("--min", "min_replicas", type=click.IntRange(min=0), default=None)
@click.option("--max", "max_replicas", type=click.IntRange(min=0), default=None)
@click.option(
    "--target",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Per node: requests in flight (llm-load) or requests/s (request-rate).",
)
@click.option("--policy", default=None, help="Scaling policy (default: llm-load).")
@click.option("--ttft-slo-ms", type=click.IntRange(min=1), default=None)
@click.option("--base-on-demand", type=click.IntRange(min=0), default=None)
@click.option("--spot/--on-demand", "use_spot", default=None)
@json_option
def scale(
    model: str,
    replicas: int | None,
    min_replicas: int | None,
    max_replicas: int | None,
    target: float | None,
    policy: str | None,
    ttft_slo_ms: int | None,
    base_on_demand: int | None,
    use_spot: bool | None,
    as_json: bool,
) -> None:
    """Set MODEL's pool to a fixed number of replicas, or autoscale it between --min and
    --max on load (--target per node)."""
    knobs = {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "target": target,
        "policy": policy,
        "ttft_slo_ms": ttft_slo_ms,
        "base_on_demand": base_on_demand,
        "use_spot": use_spot,
    }
    knobs = {k: v for k, v in knobs.items() if v is not None}
    if replicas is None and not knobs:
        fail("give --replicas, or autoscaling settings (--min, --max, --target, ...)")
    if replicas is not None:
        data = client().patch(
            f"/admin/fleet/pools/{quote(model, safe='')}", json={"replicas": replicas}
        )
        emit(data, as_json=as_json, columns=POOL_COLUMNS[:7])
    if knobs:
        data = client().put(f"/admin/scaling/{quote(model, safe='')}", json=knobs)
        emit(data, as_json=as_json, columns=SCALING_COLUMNS)


@click.command()
@click.argument("model", required=False)
@click.option("--jobs", "jobs", is_flag=True, help="The leader and each scheduled job's last run.")
@json_option
def status(model: str | None, jobs: bool, as_json: bool) -> None:
    """Pools and their nodes: state, place, load, in-flight, age, price per hour."""
    if jobs:
        report = client().get("/admin/jobs")
        if as_json:
            emit(report, as_json=True)
            return
        leader = report["leader"] or {"holder": "-", "since": "-"}
        click.echo(f"leader: {leader['holder']} since {leader['since']}")
        emit(report["jobs"], as_json=False, columns=JOB_COLUMNS, title="jobs")
        return
    data = client().get("/admin/fleet/status", params={"model": model} if model else None)
    if as_json:
        emit(data, as_json=True)
        return
    emit(data["pools"], as_json=False, columns=POOL_COLUMNS, title="pools")
    emit(data["nodes"], as_json=False, columns=NODE_COLUMNS, title="nodes")


@click.command()
@click.argument("node")
@json_option
def drain(node: str, as_json: bool) -> None:
    """Stop sending new requests to NODE; it terminates once its requests finish."""
    emit(client().post(f"/admin/fleet/nodes/{node}/drain"), as_json=as_json, columns=NODE_COLUMNS)


@click.command()
@click.argument("model", required=False)
@click.option("--all", "everything", is_flag=True, help="Take down every pool.")
@json_option
def down(model: str | None, everything: bool, as_json: bool) -> None:
    """Remove MODEL's pool (or every pool with --all): its nodes drain, then terminate."""
    if (model is None) == (not everything):
        fail("give a MODEL or --all")
    path = "/admin/fleet/pools" + ("" if everything else f"/{quote(model or '', safe='')}")
    emit(client().delete(path), as_json=as_json)


@click.command()
def agent() -> None:
    """Run the node agent beside vLLM (configured by CIC_AGENT_* variables)."""
    import asyncio

    from pydantic import ValidationError

    from agent.node_agent import AgentConfig, serve
    from fleet import configure_logging

    configure_logging("INFO", "json")
    try:
        config = AgentConfig()  # type: ignore[call-arg]
    except ValidationError as exc:
        fail(
            "invalid agent configuration: "
            + "; ".join(f"CIC_AGENT_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        )
        return
    raise SystemExit(asyncio.run(serve(config)))
