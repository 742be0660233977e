"""plan limits and limit overrides

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-26 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import fleet.types


revision: str = '0010'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The plans a new deployment starts with; edited afterwards with `cicfleet plans set`.
_SEED = [
    ('free', 'tenant', 60, 40_000, 1_000, 1_000_000, 4),
    ('free', 'key', 60, 40_000, None, None, 4),
    ('pro', 'tenant', 1_000, 1_000_000, 100_000, 100_000_000, 64),
    ('enterprise', 'tenant', 10_000, 10_000_000, None, None, 512),
]


def upgrade() -> None:
    plan_limits = op.create_table('plan_limits',
    sa.Column('plan', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('layer', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('rpm', sa.BigInteger(), nullable=True),
    sa.Column('tpm', sa.BigInteger(), nullable=True),
    sa.Column('rpd', sa.BigInteger(), nullable=True),
    sa.Column('tpd', sa.BigInteger(), nullable=True),
    sa.Column('concurrency', sa.Integer(), nullable=True),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('plan', 'layer')
    )
    op.create_table('limit_overrides',
    sa.Column('layer', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('target_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('rpm', sa.BigInteger(), nullable=True),
    sa.Column('tpm', sa.BigInteger(), nullable=True),
    sa.Column('rpd', sa.BigInteger(), nullable=True),
    sa.Column('tpd', sa.BigInteger(), nullable=True),
    sa.Column('concurrency', sa.Integer(), nullable=True),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('layer', 'target_id')
    )
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    op.bulk_insert(plan_limits, [
        {'plan': p, 'layer': lay, 'rpm': rpm, 'tpm': tpm, 'rpd': rpd, 'tpd': tpd,
         'concurrency': conc, 'updated_at': now}
        for p, lay, rpm, tpm, rpd, tpd, conc in _SEED
    ])


def downgrade() -> None:
    op.drop_table('limit_overrides')
    op.drop_table('plan_limits')
