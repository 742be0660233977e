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


@click.command()
@click.argument("model")
@click.option("--replicas", type=click.IntRange(min=0), required=True)
@json_option
def scale(model: str, replicas: int, as_json: bool) -> None:
    """Set MODEL's pool to a fixed number of replicas."""
    data = client().patch(
        f"/admin/fleet/pools/{quote(model, safe='')}", json={"replicas": replicas}
    )
    emit(data, as_json=as_json, columns=POOL_COLUMNS[:7])


@click.command()
@click.argument("model", required=False)
@json_option
def status(model: str | None, as_json: bool) -> None:
    """Pools and their nodes: state, place, load, in-flight, age, price per hour."""
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
