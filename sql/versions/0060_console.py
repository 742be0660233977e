"""web console: sessions, one-time login links, recent autoscaling decisions

Revision ID: 0060
Revises: 0050
Create Date: 2026-11-26 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import fleet.types


revision: str = '0060'
down_revision: str | None = '0050'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scaling_decisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('desired', sa.Integer(), nullable=False),
    sa.Column('target', sa.Integer(), nullable=False),
    sa.Column('spot', sa.Integer(), nullable=False),
    sa.Column('on_demand', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('placements', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_scaling_decisions_model_at', 'scaling_decisions', ['model', 'at'], unique=False)
    op.create_table('console_sessions',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('csrf', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_console_sessions_tenant_id'), 'console_sessions', ['tenant_id'], unique=False)
    op.create_index(op.f('ix_console_sessions_expires_at'), 'console_sessions', ['expires_at'], unique=False)
    op.create_table('console_login_links',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', fleet.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )


def downgrade() -> None:
    op.drop_table('console_login_links')
    op.drop_index(op.f('ix_console_sessions_expires_at'), table_name='console_sessions')
    op.drop_index(op.f('ix_console_sessions_tenant_id'), table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_index('ix_scaling_decisions_model_at', table_name='scaling_decisions')
    op.drop_table('scaling_decisions')
