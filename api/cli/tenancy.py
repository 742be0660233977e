"""Operator commands for tenants, environments and API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from api.cli.common import client, emit, json_option

TENANT_COLUMNS = ("id", "name", "plan", "status", "created_at")
KEY_COLUMNS = ("id", "name", "prefix", "environment", "status", "expires_at", "last_used_at")


@click.group()
def tenants() -> None:
    """Tenants (customers)."""


@tenants.command("create")
@click.argument("name")
@click.option("--plan", default="free", show_default=True)
@json_option
def tenants_create(name: str, plan: str, as_json: bool) -> None:
    """Create tenant NAME with its ``prod`` environment."""
    emit(
        client().post("/admin/tenants", json={"name": name, "plan": plan}),
        as_json=as_json,
        columns=TENANT_COLUMNS,
    )


@tenants.command("list")
@json_option
def tenants_list(as_json: bool) -> None:
    emit(client().get("/admin/tenants"), as_json=as_json, columns=TENANT_COLUMNS, title="tenants")


@tenants.command("suspend")
@click.argument("tenant")
@json_option
def tenants_suspend(tenant: str, as_json: bool) -> None:
    """Suspend TENANT: its keys get 403 until restored."""
    emit(client().post(f"/admin/tenants/{tenant}/suspend"), as_json=as_json, columns=TENANT_COLUMNS)


@tenants.command("restore")
@click.argument("tenant")
@json_option
def tenants_restore(tenant: str, as_json: bool) -> None:
    emit(client().post(f"/admin/tenants/{tenant}/restore"), as_json=as_json, columns=TENANT_COLUMNS)


@tenants.command("delete")
@click.argument("tenant")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def tenants_delete(tenant: str, yes: bool, as_json: bool) -> None:
    """Delete TENANT and revoke all its keys (usage history is kept)."""
    if not yes:
        click.confirm(f"Delete tenant {tenant} and revoke all its keys?", abort=True)
    emit(client().delete(f"/admin/tenants/{tenant}"), as_json=as_json, columns=TENANT_COLUMNS)


@tenants.command("login-link")
@click.argument("tenant")
@json_option
def tenants_login_link(tenant: str, as_json: bool) -> None:
    """Print a one-time sign-in link to the web console for TENANT (hand it to the tenant)."""
    admin = client()
    link = admin.post(f"/admin/tenants/{tenant}/login-link")
    link["url"] = admin.base_url.rstrip("/") + link["path"]  # the address this CLI reaches
    if as_json:
        emit(link, as_json=True)
        return
    click.echo(f"{link['url']}\n(works once, until {link['expires_at']})")


@click.group()
def envs() -> None:
    """Environments of a tenant (keys, limits and usage are split by environment)."""


@envs.command("create")
@click.argument("name")
@click.option("--tenant", required=True)
@json_option
def envs_create(name: str, tenant: str, as_json: bool) -> None:
    emit(
        client().post(f"/admin/tenants/{tenant}/environments", json={"name": name}),
        as_json=as_json,
        columns=("id", "name", "created_at"),
    )


@envs.command("list")
@click.option("--tenant", required=True)
@json_option
def envs_list(tenant: str, as_json: bool) -> None:
    emit(
        client().get(f"/admin/tenants/{tenant}/environments"),
        as_json=as_json,
        columns=("id", "name", "created_at"),
        title=f"environments of {tenant}",
    )


@click.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--tenant", required=True)
@click.option("--env", "environment", default="prod", show_default=True)
@click.option("--name", default="")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None)
@click.option("--rpm", type=click.IntRange(min=1), help="This key's requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="This key's tokens per minute.")
@click.option("--concurrency", type=click.IntRange(min=1), help="This key's concurrent requests.")
@json_option
def keys_create(
    tenant: str,
    environment: str,
    name: str,
    expires_in_days: int | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    as_json: bool,
) -> None:
    """Create a key; its plaintext is printed now and never again."""
    body: dict[str, object] = {"environment": environment, "name": name}
    if expires_in_days:
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=expires_in_days)).isoformat()
    admin = client()
    created = admin.post(f"/admin/tenants/{tenant}/keys", json=body)
    limits = {k: v for k, v in (("rpm", rpm), ("tpm", tpm), ("concurrency", concurrency)) if v}
    if limits:
        admin.put("/admin/limits", json={"key": created["id"], **limits})
        created["limits"] = limits
    if as_json:
        emit(created, as_json=True)
        return
    emit(created, as_json=False, columns=KEY_COLUMNS)
    click.echo(f"key: {created['key']}")
    click.echo("Store it now: it is not shown again.", err=True)


@keys.command("list")
@click.option("--tenant", required=True)
@json_option
def keys_list(tenant: str, as_json: bool) -> None:
    emit(
        client().get(f"/admin/tenants/{tenant}/keys"),
        as_json=as_json,
        columns=KEY_COLUMNS,
        title=f"keys of {tenant}",
    )


@keys.command("revoke")
@click.argument("key_id")
@json_option
def keys_revoke(key_id: str, as_json: bool) -> None:
    emit(client().delete(f"/admin/keys/{key_id}"), as_json=as_json, columns=KEY_COLUMNS)
