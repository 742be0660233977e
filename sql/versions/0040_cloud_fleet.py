"""pool autoscaling knobs, job runs, leader lease

Revision ID: 0040
Revises: 0010
Create Date: 2026-11-26 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import fleet.types


revision: str = '0040'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pool_scaling',
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('policy', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('min_replicas', sa.Integer(), nullable=False),
    sa.Column('max_replicas', sa.Integer(), nullable=False),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('ttft_slo_ms', sa.Integer(), nullable=False),
    sa.Column('upscale_delay_s', sa.Float(), nullable=False),
    sa.Column('downscale_delay_s', sa.Float(), nullable=False),
    sa.Column('use_spot', sa.Boolean(), nullable=False),
    sa.Column('base_on_demand', sa.Integer(), nullable=False),
    sa.Column('dynamic_on_demand', sa.Boolean(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=False),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model')
    )
    op.create_table('job_runs',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('leader', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_started_at', fleet.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', fleet.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_ok', sa.Boolean(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
    sa.Column('last_duration_ms', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('leader_lease',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('acquired_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('renewed_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('leader_lease')
    op.drop_table('job_runs')
    op.drop_table('pool_scaling')
