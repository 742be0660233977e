"""The node pool follows the nodes table; key auth follows tenancy changes at once."""

from __future__ import annotations

import pytest

from fleet import AuthenticationFailed, TenantStatus, TenantSuspended, build_services, load_settings


async def test_pool_sees_added_and_removed_nodes_at_once(services) -> None:
    assert services.pool.pick("m") is None
    a = await services.nodes.add_static("m", "http://127.0.0.1:9001", actor="t")
    b = await services.nodes.add_static("m", "http://127.0.0.1:9002", actor="t")
    await services.pool.refresh()  # what the background loop does right after the signal
    nodes = services.pool.nodes("m")
    assert {n.id for n in nodes} == {a.id, b.id}
    nodes[0].in_flight = 3
    assert services.pool.pick("m").id == nodes[1].id
    assert services.pool.pick("m", exclude=(nodes[1].id,)).id == nodes[0].id
    await services.nodes.remove(nodes[1].id, actor="t")
    await services.pool.refresh()
    assert [(n.id, n.in_flight) for n in services.pool.nodes("m")] == [(nodes[0].id, 3)]


async def test_revoked_key_and_suspended_tenant_bite_at_once(services) -> None:
    await services.tenancy.create_tenant("acme", actor="t")
    key, plain = await services.tenancy.create_key("acme", actor="t")
    _, other = await services.tenancy.create_key("acme", actor="t")
    header = f"Bearer {plain}"
    assert (await services.auth.authenticate(header)).key_id == key.id
    await services.tenancy.revoke_key(key.id, actor="t")
    with pytest.raises(AuthenticationFailed):
        await services.auth.authenticate(header)
    await services.auth.authenticate(f"Bearer {other}")
    await services.tenancy.set_tenant_status("acme", TenantStatus.SUSPENDED, actor="t")
    with pytest.raises(TenantSuspended):
        await services.auth.authenticate(f"Bearer {other}")


async def test_key_last_used_is_written_in_batches_and_at_shutdown(database_url) -> None:
    """An operator sees when each key was last used; a key never used shows nothing."""
    settings = load_settings(database_url=database_url)
    async with build_services(settings, migrate=True) as svc:
        await svc.tenancy.create_tenant("acme", actor="t")
        used, plain = await svc.tenancy.create_key("acme", actor="t")
        idle, _ = await svc.tenancy.create_key("acme", actor="t")
        for _ in range(3):
            await svc.auth.authenticate(f"Bearer {plain}")
        before = {k.id: k.last_used_at for k in await svc.tenancy.list_keys("acme")}
        assert before == {used.id: None, idle.id: None}  # nothing written per request
    # Closing the control plane writes the uses it still holds.
    async with build_services(settings) as svc:
        after = {k.id: k.last_used_at for k in await svc.tenancy.list_keys("acme")}
    assert after[used.id] is not None and after[idle.id] is None


@pytest.mark.redis
async def test_revocation_reaches_another_replica_through_redis(
    services, redis_url, redis_prefix
) -> None:
    """Two replicas on one database: a revoke on one is seen by the other within 1 s."""
    await services.tenancy.create_tenant("acme", actor="t")
    key, plain = await services.tenancy.create_key("acme", actor="t")
    settings = load_settings(
        database_url=str(services.settings.effective_database_url),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        key_cache_seconds=300,
    )
    async with build_services(settings) as one, build_services(settings) as two:
        await two.auth.authenticate(f"Bearer {plain}")  # cached for 300 s on replica two
        await one.tenancy.revoke_key(key.id, actor="t")
        for _ in range(100):
            try:
                await two.auth.authenticate(f"Bearer {plain}")
            except AuthenticationFailed:
                break
            await __import__("asyncio").sleep(0.01)
        else:
            raise AssertionError("replica two still accepts a key revoked on replica one")
