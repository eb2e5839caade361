"""recording management: retention per tenant and queue, legal holds

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23

Two tenant tables with row-level security: recording_policies (the
tenant-wide retention row, queue_id NULL and unique per tenant through a
partial index, and per-queue overrides) and recording_legal_holds (calls whose
recordings retention never purges).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TABLES: list[str] = ['recording_policies', 'recording_legal_holds']


def upgrade() -> None:
    op.create_table('recording_policies',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=True),
    sa.Column('retention_days', sa.Integer(), nullable=True),
    sa.Column('updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('retention_days IS NULL OR (retention_days >= 1 AND retention_days <= 3650)', name=op.f('ck_recording_policies_retention_days_range')),
    sa.ForeignKeyConstraint(['tenant_id', 'queue_id'], ['queues.tenant_id', 'queues.id'], name=op.f('fk_recording_policies_tenant_id_queue_id_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_recording_policies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_policies')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_recording_policies_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'queue_id', name=op.f('uq_recording_policies_tenant_id_queue_id'))
    )
    op.create_index(op.f('ix_recording_policies_tenant_id'), 'recording_policies', ['tenant_id'], unique=False)
    op.create_index('uq_recording_policies_tenant_wide', 'recording_policies', ['tenant_id'], unique=True, sqlite_where=sa.text('queue_id IS NULL'), postgresql_where=sa.text('queue_id IS NULL'))
    op.create_table('recording_legal_holds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('placed_by', sa.String(length=128), nullable=False),
    sa.Column('placed_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_recording_legal_holds_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_recording_legal_holds_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_legal_holds')),
    sa.UniqueConstraint('tenant_id', 'call_id', name=op.f('uq_recording_legal_holds_tenant_id_call_id')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_recording_legal_holds_tenant_id_id'))
    )
    op.create_index(op.f('ix_recording_legal_holds_tenant_id'), 'recording_legal_holds', ['tenant_id'], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
    op.drop_index(op.f('ix_recording_legal_holds_tenant_id'), table_name='recording_legal_holds')
    op.drop_table('recording_legal_holds')
    op.drop_index('uq_recording_policies_tenant_wide', table_name='recording_policies', sqlite_where=sa.text('queue_id IS NULL'), postgresql_where=sa.text('queue_id IS NULL'))
    op.drop_index(op.f('ix_recording_policies_tenant_id'), table_name='recording_policies')
    op.drop_table('recording_policies')
