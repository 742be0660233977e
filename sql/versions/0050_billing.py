"""billing: usage_hourly, credits, Stripe accounts and exports, webhook events

Revision ID: 0050
Revises: 0045
Create Date: 2026-11-26 19:28:07.844843
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import fleet.types


revision: str = '0050'
down_revision: str | None = '0045'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('billing_accounts',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('stripe_customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('has_payment_method', sa.Boolean(), nullable=False),
    sa.Column('delinquent_since', fleet.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('suspended_by_billing', sa.Boolean(), nullable=False),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id'),
    sa.UniqueConstraint('stripe_customer_id')
    )
    op.create_table('billing_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('meter', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hour', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('identifier', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('credit_applied', fleet.types.Money(precision=20, scale=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('response', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True),
    sa.Column('created_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('identifier', name='uq_billing_event_identifier')
    )
    with op.batch_alter_table('billing_events', schema=None) as batch_op:
        batch_op.create_index('ix_billing_events_key', ['tenant_id', 'meter', 'hour'], unique=False)

    op.create_table('billing_state',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('credit_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('amount', fleet.types.Money(precision=20, scale=10), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('granted_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credit_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_grants_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('stripe_webhook_events',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('received_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('usage_hourly',
    sa.Column('hour', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('environment_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost', fleet.types.Money(precision=20, scale=10), nullable=False),
    sa.Column('gpu_cost', fleet.types.Money(precision=20, scale=10), nullable=False),
    sa.Column('updated_at', fleet.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'tenant_id', 'environment_id', 'key_id', 'model', 'region')
    )
    with op.batch_alter_table('usage_hourly', schema=None) as batch_op:
        batch_op.create_index('ix_usage_hourly_tenant_hour', ['tenant_id', 'hour'], unique=False)

    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gpu_cost', fleet.types.Money(precision=20, scale=10), nullable=False, server_default='0'))



def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_column('gpu_cost')

    with op.batch_alter_table('usage_hourly', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_hourly_tenant_hour')

    op.drop_table('usage_hourly')
    op.drop_table('stripe_webhook_events')
    with op.batch_alter_table('credit_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_grants_tenant_id'))

    op.drop_table('credit_grants')
    op.drop_table('billing_state')
    with op.batch_alter_table('billing_events', schema=None) as batch_op:
        batch_op.drop_index('ix_billing_events_key')

    op.drop_table('billing_events')
    op.drop_table('billing_accounts')
