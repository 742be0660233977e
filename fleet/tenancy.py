"""Tenants, their environments and their API keys.

A tenant is a customer; an environment (``prod`` by default, more by name) groups keys so
limits and usage can be split; a key belongs to one environment.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet import audit
from fleet.clock import Clock, utcnow
from fleet.errors import Conflict, InvalidRequest, NotFound
from fleet.ids import new_id
from fleet.keys import KeyInfo, display_prefix, generate_key, hash_key
from fleet.signals import Signal
from fleet.tables import ApiKey, Environment, KeyStatus, Tenant, TenantStatus

DEFAULT_ENVIRONMENT = "prod"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(
            f"{kind} name {name!r} must be 1-64 letters, digits, '.', '_' or '-'",
            param="name",
        )
    return name


class TenancyService:
    """Create, find and change tenants, environments and keys (each change audited)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock | None = None):
        self._sessions = sessions
        self._clock = clock
        # Fired after a key or a tenant's status changed, so key caches forget it.
        self.changed = Signal()

    # -- tenants ---------------------------------------------------------------------------
    async def create_tenant(self, name: str, *, plan: str = "free", actor: str) -> Tenant:
        """Create a tenant with its default ``prod`` environment."""
        _check_name("tenant", name)
        async with self._sessions() as s:
            tenant = Tenant(id=new_id("ten"), name=name, plan=plan)
            s.add(tenant)
            try:
                await s.flush()  # the tenant row must exist before rows that reference it
            except IntegrityError:
                raise Conflict(f"tenant {name!r} already exists", param="name") from None
            s.add(Environment(id=new_id("env"), tenant_id=tenant.id, name=DEFAULT_ENVIRONMENT))
            audit.record(
                s,
                actor=actor,
                action="tenant.create",
                target_type="tenant",
                target_id=tenant.id,
                detail={"name": name, "plan": plan},
            )
            try:
                await s.commit()
            except IntegrityError:
                raise Conflict(f"tenant {name!r} already exists", param="name") from None
            return tenant

    async def list_tenants(self, *, include_deleted: bool = False) -> Sequence[Tenant]:
        async with self._sessions() as s:
            q = select(Tenant).order_by(Tenant.created_at)
            if not include_deleted:
                q = q.where(Tenant.status != TenantStatus.DELETED)
            return (await s.execute(q)).scalars().all()

    async def get_tenant(self, ref: str) -> Tenant:
        """Find a live tenant by id or by name."""
        async with self._sessions() as s:
            return await self._tenant(s, ref)

    async def set_tenant_status(self, ref: str, status: TenantStatus, *, actor: str) -> Tenant:
        async with self._sessions() as s:
            tenant = await self._tenant(s, ref)
            old = tenant.status
            tenant.status = status
            tenant.updated_at = utcnow(self._clock)
            if status == TenantStatus.DELETED:
                # Free the name for reuse; the id stays for usage history.
                tenant.name = f"{tenant.name}~deleted~{tenant.id}"[:128]
                await self._revoke_all(s, tenant.id)
            audit.record(
                s,
                actor=actor,
                action=f"tenant.{status.value}",
                target_type="tenant",
                target_id=tenant.id,
                detail={"from": old, "to": status.value},
            )
            await s.commit()
        self.changed.send()
        return tenant

    # -- environments ----------------------------------------------------------------------
    async def create_environment(self, tenant_ref: str, name: str, *, actor: str) -> Environment:
        _check_name("environment", name)
        async with self._sessions() as s:
            tenant = await self._tenant(s, tenant_ref)
            env = Environment(id=new_id("env"), tenant_id=tenant.id, name=name)
            s.add(env)
            audit.record(
                s,
                actor=actor,
                action="environment.create",
                target_type="environment",
                target_id=env.id,
                detail={"tenant_id": tenant.id, "name": name},
            )
            try:
                await s.commit()
            except IntegrityError:
                raise Conflict(f"environment {name!r} already exists", param="name") from None
            return env

    async def list_environments(self, tenant_ref: str) -> Sequence[Environment]:
        async with self._sessions() as s:
            tenant = await self._tenant(s, tenant_ref)
            q = select(Environment).where(Environment.tenant_id == tenant.id)
            return (await s.execute(q.order_by(Environment.created_at))).scalars().all()

    # -- keys ------------------------------------------------------------------------------
    async def create_key(
        self,
        tenant_ref: str,
        *,
        environment: str = DEFAULT_ENVIRONMENT,
        name: str = "",
        expires_at: datetime | None = None,
        actor: str,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the plaintext, which is never stored."""
        async with self._sessions() as s:
            tenant = await self._tenant(s, tenant_ref)
            env = await self._environment(s, tenant.id, environment)
            plaintext = generate_key()
            key = ApiKey(
                id=new_id("key"),
                tenant_id=tenant.id,
                environment_id=env.id,
                name=name,
                key_hash=hash_key(plaintext),
                prefix=display_prefix(plaintext),
                expires_at=expires_at,
            )
            s.add(key)
            audit.record(
                s,
                actor=actor,
                action="key.create",
                target_type="api_key",
                target_id=key.id,
                detail={"tenant_id": tenant.id, "environment": environment},
            )
            await s.commit()
            return key, plaintext

    async def list_keys(self, tenant_ref: str) -> Sequence[ApiKey]:
        async with self._sessions() as s:
            tenant = await self._tenant(s, tenant_ref)
            q = select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.created_at)
            return (await s.execute(q)).scalars().all()

    async def revoke_key(self, key_id: str, *, actor: str) -> ApiKey:
        async with self._sessions() as s:
            key = await s.get(ApiKey, key_id)
            if key is None:
                raise NotFound(f"key {key_id!r} not found", param="key_id")
            if key.status != KeyStatus.REVOKED:
                key.status = KeyStatus.REVOKED
                key.revoked_at = utcnow(self._clock)
                audit.record(
                    s,
                    actor=actor,
                    action="key.revoke",
                    target_type="api_key",
                    target_id=key.id,
                    detail={"tenant_id": key.tenant_id},
                )
                await s.commit()
        self.changed.send()
        return key

    async def mark_keys_used(self, key_ids: Collection[str]) -> None:
        """Stamp ``last_used_at`` on keys in one statement; callers batch uses so the request
        path never writes to the database."""
        if not key_ids:
            return
        async with self._sessions() as s:
            await s.execute(
                update(ApiKey)
                .where(ApiKey.id.in_(list(key_ids)))  # type: ignore[attr-defined]
                .values(last_used_at=utcnow(self._clock))
            )
            await s.commit()

    async def resolve(self, key_hash: str) -> KeyInfo | None:
        """The caller behind a key hash, or None when the key is unknown or revoked."""
        async with self._sessions() as s:
            q = (
                select(ApiKey, Tenant)
                .join(Tenant, Tenant.id == ApiKey.tenant_id)
                .where(ApiKey.key_hash == key_hash, ApiKey.status == KeyStatus.ACTIVE)
            )
            row = (await s.execute(q)).first()
        if row is None:
            return None
        key, tenant = row
        if tenant.status == TenantStatus.DELETED:
            return None
        return KeyInfo(
            key_id=key.id,
            tenant_id=tenant.id,
            environment_id=key.environment_id,
            tenant_status=tenant.status,
            plan=tenant.plan,
            expires_at=key.expires_at.timestamp() if key.expires_at else None,
        )

    # -- helpers ---------------------------------------------------------------------------
    async def _tenant(self, s: AsyncSession, ref: str) -> Tenant:
        q = select(Tenant).where(
            (Tenant.id == ref) | (Tenant.name == ref), Tenant.status != TenantStatus.DELETED
        )
        tenant = (await s.execute(q)).scalars().first()
        if tenant is None:
            raise NotFound(f"tenant {ref!r} not found", param="tenant")
        return tenant

    async def _environment(self, s: AsyncSession, tenant_id: str, name: str) -> Environment:
        q = select(Environment).where(Environment.tenant_id == tenant_id, Environment.name == name)
        env = (await s.execute(q)).scalars().first()
        if env is None:
            raise NotFound(f"environment {name!r} not found", param="environment")
        return env

    async def _revoke_all(self, s: AsyncSession, tenant_id: str) -> None:
        q = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.status == KeyStatus.ACTIVE)
        for key in (await s.execute(q)).scalars():
            key.status = KeyStatus.REVOKED
            key.revoked_at = utcnow(self._clock)
