"""Tenancy service on both stores (SQLite and this machine's PostgreSQL)."""

from sqlalchemy import select

from fleet import Conflict, NotFound, TenantStatus, hash_key
from fleet.tables import AuditLog


async def test_new_tenant_gets_prod_and_a_working_key(services) -> None:
    t = await services.tenancy.create_tenant("acme", actor="admin")
    envs = await services.tenancy.list_environments("acme")
    assert [e.name for e in envs] == ["prod"]
    key, plaintext = await services.tenancy.create_key("acme", actor="admin")
    assert plaintext.startswith(key.prefix) and key.key_hash != plaintext
    info = await services.tenancy.resolve(hash_key(plaintext))
    assert info is not None and info.tenant_id == t.id and info.key_id == key.id


async def test_duplicate_tenant_is_a_conflict(services) -> None:
    await services.tenancy.create_tenant("acme", actor="admin")
    try:
        await services.tenancy.create_tenant("acme", actor="admin")
    except Conflict as exc:
        assert exc.status == 409
    else:
        raise AssertionError("duplicate tenant accepted")


async def test_revoked_key_no_longer_resolves(services) -> None:
    await services.tenancy.create_tenant("acme", actor="admin")
    key, plaintext = await services.tenancy.create_key("acme", actor="admin")
    await services.tenancy.revoke_key(key.id, actor="admin")
    assert await services.tenancy.resolve(hash_key(plaintext)) is None


async def test_deleted_tenant_frees_name_and_kills_keys(services) -> None:
    await services.tenancy.create_tenant("acme", actor="admin")
    _, plaintext = await services.tenancy.create_key("acme", actor="admin")
    await services.tenancy.set_tenant_status("acme", TenantStatus.DELETED, actor="admin")
    assert await services.tenancy.resolve(hash_key(plaintext)) is None
    try:
        await services.tenancy.get_tenant("acme")
    except NotFound:
        pass
    else:
        raise AssertionError("deleted tenant still found")
    await services.tenancy.create_tenant("acme", actor="admin")


async def test_every_change_is_audited(services) -> None:
    await services.tenancy.create_tenant("acme", actor="ops")
    key, _ = await services.tenancy.create_key("acme", actor="ops")
    await services.tenancy.revoke_key(key.id, actor="ops")
    async with services.sessions() as s:
        actions = [a.action for a in (await s.execute(select(AuditLog))).scalars()]
    assert actions == ["tenant.create", "key.create", "key.revoke"]
