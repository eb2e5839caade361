"""ivr on live calls: entry points mapped to flows, where each call is in its flow, voicemail tasks, audio prompts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

Entry points gain the flow their callers go through, calls the flow version
they went through.  Three tenant tables with row-level security like every
tenant table: ivr_sessions (a call's place in its flow while it is there),
voicemails (a caller's message, a task until done) and ivr_audio (uploaded
prompts).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ['ivr_sessions', 'voicemails', 'ivr_audio']


def upgrade() -> None:
    with op.batch_alter_table('entry_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flow_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_entry_points_tenant_id_flow_id_ivr_flows'), 'ivr_flows', ['tenant_id', 'flow_id'], ['tenant_id', 'id'], ondelete='CASCADE')

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ivr_flow_version_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_calls_tenant_id_ivr_flow_version_id_ivr_flow_versions'), 'ivr_flow_versions', ['tenant_id', 'ivr_flow_version_id'], ['tenant_id', 'id'], ondelete='CASCADE')

    op.create_table('ivr_sessions',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('flow_version_id', sa.Uuid(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('waiting', sa.String(length=16), nullable=False),
    sa.Column('deadline', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_ivr_sessions_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'flow_version_id'], ['ivr_flow_versions.tenant_id', 'ivr_flow_versions.id'], name=op.f('fk_ivr_sessions_tenant_id_flow_version_id_ivr_flow_versions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ivr_sessions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id', name=op.f('pk_ivr_sessions'))
    )
    op.create_index('ix_ivr_sessions_deadline', 'ivr_sessions', ['deadline'], unique=False)
    op.create_table('voicemails',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_voicemails_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'queue_id'], ['queues.tenant_id', 'queues.id'], name=op.f('fk_voicemails_tenant_id_queue_id_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_voicemails_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_voicemails')),
    sa.UniqueConstraint('tenant_id', 'call_id', name=op.f('uq_voicemails_tenant_id_call_id')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_voicemails_tenant_id_id'))
    )
    op.create_index('ix_voicemails_tenant_status_created', 'voicemails', ['tenant_id', 'status', 'created_at'], unique=False)
    op.create_table('ivr_audio',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('media_type', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ivr_audio_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ivr_audio')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_ivr_audio_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_ivr_audio_tenant_id_name'))
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
    op.drop_table('ivr_audio')
    op.drop_index('ix_voicemails_tenant_status_created', table_name='voicemails')
    op.drop_table('voicemails')
    op.drop_index('ix_ivr_sessions_deadline', table_name='ivr_sessions')
    op.drop_table('ivr_sessions')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_calls_tenant_id_ivr_flow_version_id_ivr_flow_versions'), type_='foreignkey')
        batch_op.drop_column('ivr_flow_version_id')
    with op.batch_alter_table('entry_points', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_entry_points_tenant_id_flow_id_ivr_flows'), type_='foreignkey')
        batch_op.drop_column('flow_id')
