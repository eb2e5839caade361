"""contact center: routing and caller columns on calls

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

``calls`` gains what the ACD needs to order and time offers (priority,
queued_at, offered_at) and the hash of the caller's secret.  No new tables,
so no new row-level security policies (calls already has one).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('queued_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('offered_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('caller_token_hash', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_calls_tenant_queue_status', ['tenant_id', 'queue_id', 'status'], unique=False)
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.alter_column('priority', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_tenant_queue_status')
        batch_op.drop_column('caller_token_hash')
        batch_op.drop_column('offered_at')
        batch_op.drop_column('queued_at')
        batch_op.drop_column('priority')
