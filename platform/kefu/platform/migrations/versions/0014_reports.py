"""reporting: agent presence log, shift schedules, call facts and rollups

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23

Tenant tables with row-level security: agent_events (the append-only presence
log), agent_shifts (an agent's shift schedule, for adherence), report_dirty_calls
and report_dirty_agents (what the rollup job must recompute), report_state (how
far agent time is rolled up; the per-tenant job lock), report_call_facts (one
row per ended call) and report_rollups (15-minute UTC buckets per dimension key).
Nothing is backfilled: POST /api/v1/reports/rebuild computes facts and rollups
from the existing call logs (presence history starts with this revision).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TABLES: list[str] = [
    'report_rollups', 'report_state', 'agent_events', 'agent_shifts', 'report_dirty_agents', 'report_call_facts', 'report_dirty_calls',
]


def upgrade() -> None:
    op.create_table('report_rollups',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('dimension', sa.String(length=8), nullable=False),
    sa.Column('key_id', sa.Uuid(), nullable=False),
    sa.Column('bucket_start', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('calls', sa.BigInteger(), nullable=False),
    sa.Column('answered', sa.BigInteger(), nullable=False),
    sa.Column('abandoned', sa.BigInteger(), nullable=False),
    sa.Column('short_abandoned', sa.BigInteger(), nullable=False),
    sa.Column('blocked', sa.BigInteger(), nullable=False),
    sa.Column('ivr_entered', sa.BigInteger(), nullable=False),
    sa.Column('ivr_contained', sa.BigInteger(), nullable=False),
    sa.Column('voicemails', sa.BigInteger(), nullable=False),
    sa.Column('callbacks', sa.BigInteger(), nullable=False),
    sa.Column('other', sa.BigInteger(), nullable=False),
    sa.Column('sl_offered', sa.BigInteger(), nullable=False),
    sa.Column('sl_answered_within', sa.BigInteger(), nullable=False),
    sa.Column('asa_answered', sa.BigInteger(), nullable=False),
    sa.Column('asa_wait_ms', sa.BigInteger(), nullable=False),
    sa.Column('abandon_wait_ms', sa.BigInteger(), nullable=False),
    sa.Column('handled', sa.BigInteger(), nullable=False),
    sa.Column('talk_ms', sa.BigInteger(), nullable=False),
    sa.Column('hold_ms', sa.BigInteger(), nullable=False),
    sa.Column('acw_ms', sa.BigInteger(), nullable=False),
    sa.Column('transferred', sa.BigInteger(), nullable=False),
    sa.Column('fcr_resolved', sa.BigInteger(), nullable=False),
    sa.Column('fcr_flagged', sa.BigInteger(), nullable=False),
    sa.Column('logged_in_ms', sa.BigInteger(), nullable=False),
    sa.Column('available_ms', sa.BigInteger(), nullable=False),
    sa.Column('scheduled_ms', sa.BigInteger(), nullable=False),
    sa.Column('adherent_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_rollups_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_rollups')),
    sa.UniqueConstraint('tenant_id', 'dimension', 'key_id', 'bucket_start', name=op.f('uq_report_rollups_tenant_id_dimension_key_id_bucket_start'))
    )
    op.create_table('report_state',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agent_time_through', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_state_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_state')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_report_state_tenant_id'))
    )
    op.create_table('agent_events',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('system_state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('call_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'agent_id'], ['agents.tenant_id', 'agents.id'], name=op.f('fk_agent_events_tenant_id_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_events'))
    )
    with op.batch_alter_table('agent_events', schema=None) as batch_op:
        batch_op.create_index('ix_agent_events_tenant_agent_at', ['tenant_id', 'agent_id', 'at', 'id'], unique=False)

    op.create_table('agent_shifts',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('schedule_id', sa.Uuid(), nullable=True),
    sa.Column('valid_from', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('set_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'agent_id'], ['agents.tenant_id', 'agents.id'], name=op.f('fk_agent_shifts_tenant_id_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_shifts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_shifts'))
    )
    with op.batch_alter_table('agent_shifts', schema=None) as batch_op:
        batch_op.create_index('ix_agent_shifts_tenant_agent_from', ['tenant_id', 'agent_id', 'valid_from'], unique=False)

    op.create_table('report_dirty_agents',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('since', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_dirty_agents_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_dirty_agents')),
    sa.UniqueConstraint('tenant_id', 'agent_id', name=op.f('uq_report_dirty_agents_tenant_id_agent_id'))
    )
    op.create_table('report_call_facts',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('bucket_start', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('caller', sa.String(length=200), nullable=True),
    sa.Column('queue_id', sa.Uuid(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.Column('callback', sa.Boolean(), nullable=False),
    sa.Column('ivr_entered', sa.Boolean(), nullable=False),
    sa.Column('service_level_s', sa.Integer(), nullable=False),
    sa.Column('wait_ms', sa.BigInteger(), nullable=True),
    sa.Column('talk_ms', sa.BigInteger(), nullable=False),
    sa.Column('hold_ms', sa.BigInteger(), nullable=False),
    sa.Column('acw_ms', sa.BigInteger(), nullable=False),
    sa.Column('transferred', sa.Boolean(), nullable=False),
    sa.Column('first_call_resolution', sa.Boolean(), nullable=True),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('contributions', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_report_call_facts_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_call_facts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_call_facts')),
    sa.UniqueConstraint('tenant_id', 'call_id', name=op.f('uq_report_call_facts_tenant_id_call_id'))
    )
    with op.batch_alter_table('report_call_facts', schema=None) as batch_op:
        batch_op.create_index('ix_report_call_facts_tenant_bucket', ['tenant_id', 'bucket_start'], unique=False)
        batch_op.create_index('ix_report_call_facts_tenant_caller', ['tenant_id', 'caller'], unique=False)

    op.create_table('report_dirty_calls',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_dirty_calls_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_dirty_calls')),
    sa.UniqueConstraint('tenant_id', 'call_id', name=op.f('uq_report_dirty_calls_tenant_id_call_id'))
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
    op.drop_table('report_dirty_calls')
    with op.batch_alter_table('report_call_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_report_call_facts_tenant_caller')
        batch_op.drop_index('ix_report_call_facts_tenant_bucket')

    op.drop_table('report_call_facts')
    op.drop_table('report_dirty_agents')
    with op.batch_alter_table('agent_shifts', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_shifts_tenant_agent_from')

    op.drop_table('agent_shifts')
    with op.batch_alter_table('agent_events', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_events_tenant_agent_at')

    op.drop_table('agent_events')
    op.drop_table('report_state')
    op.drop_table('report_rollups')
