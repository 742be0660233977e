"""Operator commands for served models, prices, static nodes and the audit log."""

from __future__ import annotations

from decimal import Decimal

import click

from api.cli.common import client, emit, json_option

MODEL_COLUMNS = ("name", "context_length", "default_max_tokens", "created_at")
NODE_COLUMNS = ("id", "model", "url", "state", "provider", "region", "price_per_hour")


@click.group()
def models() -> None:
    """Served models and their prices."""


@models.command("add")
@click.argument("name")
@click.option("--context-length", type=click.IntRange(min=1), default=8192, show_default=True)
@click.option(
    "--max-tokens",
    "default_max_tokens",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Cap when a request sets no max_tokens.",
)
@click.option("--input-price", type=Decimal, default=Decimal(0), help="Per 1M input tokens.")
@click.option("--output-price", type=Decimal, default=Decimal(0), help="Per 1M output tokens.")
@json_option
def models_add(
    name: str,
    context_length: int,
    default_max_tokens: int,
    input_price: Decimal,
    output_price: Decimal,
    as_json: bool,
) -> None:
    body = {
        "name": name,
        "context_length": context_length,
        "default_max_tokens": default_max_tokens,
        "input_per_1m": str(input_price),
        "output_per_1m": str(output_price),
    }
    emit(client().post("/admin/models", json=body), as_json=as_json, columns=MODEL_COLUMNS)


@models.command("list")
@json_option
def models_list(as_json: bool) -> None:
    emit(client().get("/admin/models"), as_json=as_json, columns=MODEL_COLUMNS, title="models")


@models.command("show")
@click.argument("name")
@json_option
def models_show(name: str, as_json: bool) -> None:
    model = client().get(f"/admin/models/{name}")
    if as_json:
        emit(model, as_json=True)
        return
    emit(model, as_json=False, columns=MODEL_COLUMNS)
    emit(
        model["prices"],
        as_json=False,
        title="prices per 1M tokens",
        columns=("region", "input_per_1m", "output_per_1m", "effective_from"),
    )


@models.command("price")
@click.argument("name")
@click.option("--input-price", type=Decimal, required=True)
@click.option("--output-price", type=Decimal, required=True)
@click.option("--region", default="*", show_default=True)
@click.option("--from", "effective_from", default=None, help="ISO time; default now.")
@json_option
def models_price(
    name: str,
    input_price: Decimal,
    output_price: Decimal,
    region: str,
    effective_from: str | None,
    as_json: bool,
) -> None:
    """Set a new price from a time on (past requests keep theirs)."""
    body = {
        "input_per_1m": str(input_price),
        "output_per_1m": str(output_price),
        "region": region,
        "effective_from": effective_from,
    }
    emit(client().post(f"/admin/prices/{name}", json=body), as_json=as_json)


@models.command("remove")
@click.argument("name")
@json_option
def models_remove(name: str, as_json: bool) -> None:
    emit(client().delete(f"/admin/models/{name}"), as_json=as_json)


@click.group()
def nodes() -> None:
    """Static nodes: OpenAI-compatible servers you already run (e.g. your own vLLM)."""


@nodes.command("add")
@click.argument("model")
@click.argument("url")
@click.option("--region", default="local", show_default=True)
@click.option("--price-per-hour", type=Decimal, default=Decimal(0))
@json_option
def nodes_add(model: str, url: str, region: str, price_per_hour: Decimal, as_json: bool) -> None:
    """Route MODEL traffic to the server at URL."""
    body = {"model": model, "url": url, "region": region, "price_per_hour": str(price_per_hour)}
    emit(client().post("/admin/nodes", json=body), as_json=as_json, columns=NODE_COLUMNS)


@nodes.command("list")
@click.option("--model", default=None)
@json_option
def nodes_list(model: str | None, as_json: bool) -> None:
    params = {"model": model} if model else {}
    emit(
        client().get("/admin/nodes", params=params),
        as_json=as_json,
        columns=NODE_COLUMNS,
        title="nodes",
    )


@nodes.command("remove")
@click.argument("node_id")
@json_option
def nodes_remove(node_id: str, as_json: bool) -> None:
    emit(client().delete(f"/admin/nodes/{node_id}"), as_json=as_json, columns=NODE_COLUMNS)


@click.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
def audit(limit: int, as_json: bool) -> None:
    """Recent admin changes, newest first."""
    emit(
        client().get("/admin/audit", params={"limit": limit}),
        as_json=as_json,
        columns=("at", "actor", "action", "target_type", "target_id"),
        title="audit log",
    )
