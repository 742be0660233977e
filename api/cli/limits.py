"""Operator commands for rate limits and plans.

A figure is a count, ``unlimited`` (lift the plan's limit) or ``inherit`` (back to the plan).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from api.cli.common import client, emit, json_option

F = TypeVar("F", bound=Callable[..., Any])
FIGURES = ("rpm", "tpm", "rpd", "tpd", "concurrency")
_HELP = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "rpd": "requests per day",
    "tpd": "tokens per day",
    "concurrency": "concurrent requests",
}


class FigureType(click.ParamType):
    name = "N|unlimited|inherit"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "unlimited":
            return -1
        if text == "inherit":
            return INHERIT
        try:
            number = int(text)
        except ValueError:
            self.fail(f"{value!r} is not a count, 'unlimited' or 'inherit'", param, ctx)
        if number < 1:
            self.fail("must be >= 1 (or 'unlimited')", param, ctx)
        return number


FIGURE = FigureType()
INHERIT = "inherit"


def figure_options(func: F) -> F:
    """``--rpm`` ... ``--concurrency``; an option not given leaves that figure unchanged."""
    for name in reversed(FIGURES):
        func = click.option(f"--{name}", type=FIGURE, default=None, help=_HELP[name])(func)
    return func


def figure_changes(values: dict[str, Any]) -> dict[str, int | None]:
    """The figures given on the command line: a count, -1 (unlimited) or None (inherit)."""
    return {k: None if v == INHERIT else v for k in FIGURES if (v := values.get(k)) is not None}


def target_options(func: F) -> F:
    func = click.option("--global", "global_", is_flag=True, help="The whole deployment.")(func)
    func = click.option("--key", help="A key id (key_...).")(func)
    func = click.option("--env", "environment", help="An environment name of --tenant.")(func)
    return click.option("--tenant", help="A tenant name or id.")(func)


def _target(tenant: str | None, environment: str | None, key: str | None, global_: bool) -> dict:
    target: dict[str, Any] = {"global": global_} if global_ else {}
    for name, value in (("tenant", tenant), ("environment", environment), ("key", key)):
        if value:
            target[name] = value
    return target


def _rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per layer: what applies, with ``*`` where an override set it."""
    rows = []
    for v in views:
        row = {"layer": v["layer"], "target": v["target"], "plan": v["plan"] or ""}
        for name in FIGURES:
            value = v["effective"][name]
            mark = "*" if v["override"] and v["override"][name] is not None else ""
            row[name] = ("-" if value is None else str(value)) + mark
        rows.append(row)
    return rows


_COLUMNS = ["layer", "target", "plan", *FIGURES]


@click.group()
def limits() -> None:
    """Rate limits of the global, tenant, environment and key layers."""


@limits.command("set")
@target_options
@figure_options
@json_option
def limits_set(
    tenant: str | None,
    environment: str | None,
    key: str | None,
    global_: bool,
    as_json: bool,
    **figures: Any,
) -> None:
    """Override figures of one layer (the others keep theirs)."""
    changes = figure_changes(figures)
    if not changes:
        raise click.UsageError("give at least one of --rpm --tpm --rpd --tpd --concurrency")
    body = {**_target(tenant, environment, key, global_), **changes}
    view = client().put("/admin/limits", json=body)
    emit(view if as_json else _rows([view]), as_json=as_json, columns=_COLUMNS)


@limits.command("show")
@target_options
@json_option
def limits_show(
    tenant: str | None, environment: str | None, key: str | None, global_: bool, as_json: bool
) -> None:
    """What applies on each layer from global down to the one given (* = overridden)."""
    params = {k: str(v).lower() for k, v in _target(tenant, environment, key, global_).items()}
    views = client().get("/admin/limits", params=params)
    emit(views if as_json else _rows(views), as_json=as_json, columns=_COLUMNS)


@click.group()
def plans() -> None:
    """Plans: the default limits of every tenant on them."""


@plans.command("list")
@json_option
def plans_list(as_json: bool) -> None:
    rows = client().get("/admin/plans")
    if not as_json:
        rows = [{**r, **{f: "-" if r[f] is None else r[f] for f in FIGURES}} for r in rows]
    emit(rows, as_json=as_json, columns=["plan", "layer", *FIGURES])


@plans.command("set")
@click.argument("plan")
@click.option(
    "--layer",
    type=click.Choice(["tenant", "environment", "key"]),
    default="tenant",
    show_default=True,
    help="Which layer of each tenant on the plan these figures limit.",
)
@figure_options
@json_option
def plans_set(plan: str, layer: str, as_json: bool, **figures: Any) -> None:
    """Change figures of PLAN ('inherit' or 'unlimited' removes the plan's limit)."""
    changes = figure_changes(figures)
    if not changes:
        raise click.UsageError("give at least one of --rpm --tpm --rpd --tpd --concurrency")
    row = client().put(f"/admin/plans/{plan}", json={"layer": layer, **changes})
    emit(row, as_json=as_json, columns=["plan", "layer", *FIGURES])
