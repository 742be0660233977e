"""Key auth: cached for the TTL (on a fake clock), forgotten at once when tenancy changes."""

from __future__ import annotations

import asyncio

import pytest

from fleet import AuthenticationFailed, FakeClock, KeyInfo, TenantSuspended, hash_key
from fleet.auth import KeyAuth
from fleet.signals import Signal


class FakeTenancy:
    def __init__(self) -> None:
        self.keys: dict[str, KeyInfo] = {}
        self.lookups = 0
        self.changed = Signal()

    async def resolve(self, key_hash: str) -> KeyInfo | None:
        self.lookups += 1
        await asyncio.sleep(0)
        return self.keys.get(key_hash)

    def add(self, key: str, *, status: str = "active", expires_at: float | None = None) -> None:
        self.keys[hash_key(key)] = KeyInfo(
            key_id="key_1",
            tenant_id="ten_1",
            environment_id="env_1",
            tenant_status=status,
            plan="free",
            expires_at=expires_at,
        )


@pytest.fixture
def setup() -> tuple[KeyAuth, FakeTenancy, FakeClock]:
    tenancy, clock = FakeTenancy(), FakeClock()
    tenancy.add("sk-good")
    return KeyAuth(tenancy, clock=clock, ttl_seconds=5.0), tenancy, clock  # type: ignore[arg-type]


async def test_cached_until_ttl_then_resolved_again(setup) -> None:
    auth, tenancy, clock = setup
    assert (await auth.authenticate("Bearer sk-good")).tenant_id == "ten_1"
    clock.advance(4.9)
    await auth.authenticate("bearer sk-good")
    assert tenancy.lookups == 1
    clock.advance(0.2)
    await auth.authenticate("Bearer sk-good")
    assert tenancy.lookups == 2


async def test_concurrent_misses_share_one_lookup(setup) -> None:
    auth, tenancy, _ = setup
    await asyncio.gather(*(auth.authenticate("Bearer sk-good") for _ in range(20)))
    assert tenancy.lookups == 1


async def test_revocation_is_seen_at_once(setup) -> None:
    auth, tenancy, _ = setup
    await auth.authenticate("Bearer sk-good")
    tenancy.keys.clear()
    tenancy.changed.send()
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("Bearer sk-good")


@pytest.mark.parametrize("header", [None, "", "sk-good", "Basic sk-good", "Bearer sk-bad"])
async def test_missing_or_unknown_key_is_401(setup, header) -> None:
    auth, _, _ = setup
    with pytest.raises(AuthenticationFailed) as info:
        await auth.authenticate(header)
    assert info.value.status == 401 and info.value.code == "invalid_api_key"


async def test_unknown_keys_are_not_cached(setup) -> None:
    auth, tenancy, _ = setup
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("Bearer sk-new")
    tenancy.add("sk-new")
    assert (await auth.authenticate("Bearer sk-new")).key_id == "key_1"


async def test_suspended_tenant_is_403(setup) -> None:
    auth, tenancy, _ = setup
    tenancy.add("sk-late", status="suspended")
    with pytest.raises(TenantSuspended) as info:
        await auth.authenticate("Bearer sk-late")
    assert info.value.status == 403


async def test_expired_key_is_401_even_from_cache(setup) -> None:
    auth, tenancy, clock = setup
    tenancy.add("sk-brief", expires_at=clock.now() + 2)
    await auth.authenticate("Bearer sk-brief")
    clock.advance(2)
    with pytest.raises(AuthenticationFailed, match="expired"):
        await auth.authenticate("Bearer sk-brief")
