"""pool placements decided by the autoscaler; node engine keys

Revision ID: 0045
Revises: 0040
Create Date: 2026-11-26 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0045'
down_revision: str | None = '0040'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pools') as batch:
        batch.add_column(sa.Column('placements', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('nodes') as batch:
        batch.add_column(sa.Column('engine_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('nodes') as batch:
        batch.drop_column('engine_key')
    with op.batch_alter_table('pools') as batch:
        batch.drop_column('placements')
