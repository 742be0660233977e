"""Who is signed in to the web console.

Operators sign in with the admin token; a tenant signs in with a one-time login link an
operator hands out (``cicfleet tenants login-link T``), so tenants have no password to leak or
reset. Either way the browser gets a random session token (the cookie); only its SHA-256 is
stored, next to a per-session CSRF token every form must echo. Sessions live in the database,
so any replica behind the load balancer recognises them, and they expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from fleet import audit
from fleet.clock import Clock, utcnow
from fleet.errors import AuthenticationFailed, NotFound
from fleet.tables import ConsoleLoginLink, ConsoleSession, Tenant, TenantStatus


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A console session: ``tenant_id`` None means an operator."""

    tenant_id: str | None
    csrf: str
    expires_at: datetime

    @property
    def operator(self) -> bool:
        return self.tenant_id is None

    def may_see(self, tenant_id: str) -> bool:
        """Operators see every tenant; a tenant only itself."""
        return self.operator or self.tenant_id == tenant_id

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


@dataclass(frozen=True, slots=True)
class LoginLink:
    token: str  # shown once; only its hash is stored
    tenant_id: str
    expires_at: datetime


class ConsoleAuth:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock | None = None,
        session_seconds: float = 12 * 3600,
        link_seconds: float = 15 * 60,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._session_ttl = timedelta(seconds=session_seconds)
        self._link_ttl = timedelta(seconds=link_seconds)

    async def login_link(self, tenant_ref: str, *, actor: str) -> LoginLink:
        """A one-time link for a live tenant (by id or name), valid for ``link_seconds``."""
        token = secrets.token_urlsafe(32)
        now = utcnow(self._clock)
        async with self._sessions() as s:
            q = select(Tenant).where(
                (col(Tenant.id) == tenant_ref) | (col(Tenant.name) == tenant_ref),
                col(Tenant.status) != TenantStatus.DELETED,
            )
            tenant = (await s.execute(q)).scalars().first()
            if tenant is None:
                raise NotFound(f"tenant {tenant_ref!r} not found", param="tenant")
            link = ConsoleLoginLink(
                token_hash=_hash(token),
                tenant_id=tenant.id,
                created_at=now,
                expires_at=now + self._link_ttl,
            )
            s.add(link)
            audit.record(
                s,
                actor=actor,
                action="console.login_link",
                target_type="tenant",
                target_id=tenant.id,
            )
            await s.commit()
        return LoginLink(token=token, tenant_id=tenant.id, expires_at=link.expires_at)

    async def redeem(self, token: str) -> tuple[str, SignedIn]:
        """Trade a login link for a tenant session; a link works once, before it expires."""
        now = utcnow(self._clock)
        async with self._sessions() as s:
            link = await s.get(ConsoleLoginLink, _hash(token))
            if link is None or link.used_at is not None or link.expires_at <= now:
                raise AuthenticationFailed(
                    "this login link is unknown, used or expired; ask for a new one",
                    code="invalid_login_link",
                )
            tenant = await s.get(Tenant, link.tenant_id)
            if tenant is None or tenant.status == TenantStatus.DELETED:
                raise AuthenticationFailed(
                    "this tenant no longer exists", code="invalid_login_link"
                )
            link.used_at = now
            await s.commit()
        return await self.start(link.tenant_id)

    async def start(self, tenant_id: str | None) -> tuple[str, SignedIn]:
        """A new session (``tenant_id`` None: operator); returns the cookie value and it."""
        token = secrets.token_urlsafe(32)
        now = utcnow(self._clock)
        row = ConsoleSession(
            token_hash=_hash(token),
            tenant_id=tenant_id,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + self._session_ttl,
        )
        async with self._sessions() as s:
            s.add(row)
            # Expired sessions and links are dropped as new ones start: no job needed.
            await s.execute(delete(ConsoleSession).where(col(ConsoleSession.expires_at) <= now))
            await s.execute(delete(ConsoleLoginLink).where(col(ConsoleLoginLink.expires_at) <= now))
            await s.commit()
        return token, SignedIn(tenant_id, row.csrf, row.expires_at)

    async def get(self, token: str | None) -> SignedIn | None:
        """The live session behind a cookie, or None (unknown or expired)."""
        if not token:
            return None
        async with self._sessions() as s:
            row = await s.get(ConsoleSession, _hash(token))
            if row is None or row.expires_at <= utcnow(self._clock):
                return None
            if row.tenant_id is not None:
                tenant = await s.get(Tenant, row.tenant_id)
                if tenant is None or tenant.status == TenantStatus.DELETED:
                    return None  # a deleted tenant's sessions end with it
        return SignedIn(row.tenant_id, row.csrf, row.expires_at)

    async def end(self, token: str | None) -> None:
        if not token:
            return
        async with self._sessions() as s:
            await s.execute(
                delete(ConsoleSession).where(col(ConsoleSession.token_hash) == _hash(token))
            )
            await s.commit()
