"""The Alembic migrations in ``sql/`` and the SQLModel tables describe the same schema, on
SQLite and on PostgreSQL, and upgrading twice is harmless."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fleet.db import create_engine, upgrade
from fleet.tables import metadata


async def test_migrations_match_tables(database_url: str) -> None:
    await upgrade(database_url)
    await upgrade(database_url)  # idempotent: a restart re-runs it
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": False}), metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"migrations and tables differ: {diff}"
