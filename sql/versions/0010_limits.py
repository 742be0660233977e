"""plan limits and limit overrides

Revision ID: 0010
Revises: 0020
Create Date: 2026-11-26 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import fleet.types


revision: str = '0010'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def upgrade() -> None:
    op.create_table('plan_limits',
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


def downgrade() -> None:
    op.drop_table('limit_overrides')
    op.drop_table('plan_limits')
