"""fleet pools and node bookkeeping

Revision ID: 0020
Revises: 0001
Create Date: 2026-11-26 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import fleet.types


revision: str = '0020'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def upgrade() -> None:
    op.create_table('pools',
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('replicas', sa.Integer(), nullable=False),
    sa.Column('spot', sa.Boolean(), nullable=False),
    sa.Column('gpu', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('routing', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model')
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bootstrap_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('phase', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('replaces', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('running', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('waiting', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('kv_cache', sa.Float(), nullable=False, server_default='0'))
        batch_op.create_index(batch_op.f('ix_nodes_state_changed_at'), ['state_changed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_state_changed_at'))
        for name in ('kv_cache', 'waiting', 'running', 'replaces', 'attempts', 'phase', 'bootstrap_hash'):
            batch_op.drop_column(name)
    op.drop_table('pools')
