"""The admin API (``/admin``, bearer ``CIC_ADMIN_TOKEN``): tenants, environments, keys,
models, static nodes and the audit log. Each handler parses, calls one fleet service, renders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api import admin_views as views
from api.guards import actor, admin_guard
from api.scaling_admin import SCALING_ADMIN_CONTROLLERS
from fleet import Services, TenantStatus
from fleet.audit import recent


class TenantIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    plan: str = "free"


class EnvironmentIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    environment: str = "prod"
    name: str = ""
    expires_at: datetime | None = None


class ModelIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    context_length: int = 8192
    default_max_tokens: int = 1024
    input_per_1m: Decimal = Decimal(0)
    output_per_1m: Decimal = Decimal(0)
    region: str = "*"


class PriceIn(msgspec.Struct, forbid_unknown_fields=True):
    input_per_1m: Decimal
    output_per_1m: Decimal
    region: str = "*"
    effective_from: datetime | None = None


class StaticNodeIn(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    url: str
    region: str = "local"
    price_per_hour: Decimal = Decimal(0)


def _svc(state: State) -> Services:
    return state.services  # type: ignore[no-any-return]


async def _set_status(
    state: State, request: Request[Any, Any, Any], tenant: str, status: TenantStatus
) -> dict[str, Any]:
    """Suspend, restore and delete are one audited status change."""
    t = await _svc(state).tenancy.set_tenant_status(tenant, status, actor=actor(request))
    return views.tenant(t)


class TenantController(Controller):
    path = "/admin/tenants"
    guards = [admin_guard]
    tags = ["admin"]

    @post("/")
    async def create(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[TenantIn]
    ) -> dict[str, Any]:
        t = await _svc(state).tenancy.create_tenant(data.name, plan=data.plan, actor=actor(request))
        return views.tenant(t)

    @get("/")
    async def list_(self, state: State) -> list[dict[str, Any]]:
        return [views.tenant(t) for t in await _svc(state).tenancy.list_tenants()]

    @get("/{tenant:str}")
    async def show(self, state: State, tenant: FromPath[str]) -> dict[str, Any]:
        return views.tenant(await _svc(state).tenancy.get_tenant(tenant))

    @post("/{tenant:str}/suspend", status_code=200)
    async def suspend(
        self, state: State, request: Request[Any, Any, Any], tenant: FromPath[str]
    ) -> dict[str, Any]:
        return await _set_status(state, request, tenant, TenantStatus.SUSPENDED)

    @post("/{tenant:str}/restore", status_code=200)
    async def restore(
        self, state: State, request: Request[Any, Any, Any], tenant: FromPath[str]
    ) -> dict[str, Any]:
        return await _set_status(state, request, tenant, TenantStatus.ACTIVE)

    @delete("/{tenant:str}", status_code=200)
    async def remove(
        self, state: State, request: Request[Any, Any, Any], tenant: FromPath[str]
    ) -> dict[str, Any]:
        return await _set_status(state, request, tenant, TenantStatus.DELETED)

    @post("/{tenant:str}/environments")
    async def create_environment(
        self,
        state: State,
        request: Request[Any, Any, Any],
        tenant: FromPath[str],
        data: JSONBody[EnvironmentIn],
    ) -> dict[str, Any]:
        env = await _svc(state).tenancy.create_environment(tenant, data.name, actor=actor(request))
        return views.environment(env)

    @get("/{tenant:str}/environments")
    async def list_environments(self, state: State, tenant: FromPath[str]) -> list[dict[str, Any]]:
        return [views.environment(e) for e in await _svc(state).tenancy.list_environments(tenant)]

    @post("/{tenant:str}/keys")
    async def create_key(
        self,
        state: State,
        request: Request[Any, Any, Any],
        tenant: FromPath[str],
        data: JSONBody[KeyIn],
    ) -> dict[str, Any]:
        """Create a key. The response is the only time the plaintext ``key`` is shown."""
        key, plaintext = await _svc(state).tenancy.create_key(
            tenant,
            environment=data.environment,
            name=data.name,
            expires_at=data.expires_at,
            actor=actor(request),
        )
        return {**views.api_key(key, environment_name=data.environment), "key": plaintext}

    @get("/{tenant:str}/keys")
    async def list_keys(self, state: State, tenant: FromPath[str]) -> list[dict[str, Any]]:
        tenancy = _svc(state).tenancy
        envs = {e.id: e.name for e in await tenancy.list_environments(tenant)}
        return [
            views.api_key(k, environment_name=envs.get(k.environment_id))
            for k in await tenancy.list_keys(tenant)
        ]


class KeyController(Controller):
    path = "/admin/keys"
    guards = [admin_guard]
    tags = ["admin"]

    @delete("/{key_id:str}", status_code=200)
    async def revoke(
        self, state: State, request: Request[Any, Any, Any], key_id: FromPath[str]
    ) -> dict[str, Any]:
        return views.api_key(await _svc(state).tenancy.revoke_key(key_id, actor=actor(request)))


class ModelController(Controller):
    path = "/admin/models"
    guards = [admin_guard]
    tags = ["admin"]

    @post("/")
    async def create(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[ModelIn]
    ) -> dict[str, Any]:
        m = await _svc(state).catalog.create_model(
            data.name,
            context_length=data.context_length,
            default_max_tokens=data.default_max_tokens,
            input_per_1m=data.input_per_1m,
            output_per_1m=data.output_per_1m,
            region=data.region,
            actor=actor(request),
        )
        return views.model(m)

    @get("/")
    async def list_(self, state: State) -> list[dict[str, Any]]:
        return [views.model(m) for m in (await _svc(state).catalog.models()).values()]

    @get("/{name:path}")
    async def show(self, state: State, name: FromPath[str]) -> dict[str, Any]:
        catalog = _svc(state).catalog
        name = name.lstrip("/")
        m = await catalog.get_model(name)
        return {**views.model(m), "prices": [views.price(p) for p in await catalog.prices(name)]}

    @delete("/{name:path}", status_code=200)
    async def remove(
        self, state: State, request: Request[Any, Any, Any], name: FromPath[str]
    ) -> dict[str, str]:
        name = name.lstrip("/")
        await _svc(state).catalog.delete_model(name, actor=actor(request))
        return {"deleted": name}


class PriceController(Controller):
    """Prices sit under their own path: model names may contain '/' (``org/model``)."""

    path = "/admin/prices"
    guards = [admin_guard]
    tags = ["admin"]

    @post("/{name:path}")
    async def set_price(
        self,
        state: State,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        data: JSONBody[PriceIn],
    ) -> dict[str, Any]:
        row = await _svc(state).catalog.set_price(
            name.lstrip("/"),
            input_per_1m=data.input_per_1m,
            output_per_1m=data.output_per_1m,
            region=data.region,
            effective_from=data.effective_from,
            actor=actor(request),
        )
        return views.price(row)


class NodeController(Controller):
    path = "/admin/nodes"
    guards = [admin_guard]
    tags = ["admin"]

    @post("/")
    async def add(
        self, state: State, request: Request[Any, Any, Any], data: JSONBody[StaticNodeIn]
    ) -> dict[str, Any]:
        svc = _svc(state)
        await svc.catalog.get_model(data.model)
        node = await svc.nodes.add_static(
            data.model,
            data.url,
            region=data.region,
            price_per_hour=data.price_per_hour,
            actor=actor(request),
        )
        return views.node(node)

    @get("/")
    async def list_(
        self, state: State, model: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        return [views.node(n) for n in await _svc(state).nodes.list(model=model)]

    @delete("/{node_id:str}", status_code=200)
    async def remove(
        self, state: State, request: Request[Any, Any, Any], node_id: FromPath[str]
    ) -> dict[str, Any]:
        return views.node(await _svc(state).nodes.remove(node_id, actor=actor(request)))


class AuditController(Controller):
    path = "/admin/audit"
    guards = [admin_guard]
    tags = ["admin"]

    @get("/")
    async def list_(
        self, state: State, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        return [views.audit(a) for a in await recent(_svc(state).sessions, limit=limit)]


ADMIN_CONTROLLERS = [
    TenantController,
    KeyController,
    ModelController,
    PriceController,
    NodeController,
    AuditController,
]

# Scaling knobs and the jobs report live in their own module; registered with the rest.
ADMIN_CONTROLLERS += SCALING_ADMIN_CONTROLLERS
