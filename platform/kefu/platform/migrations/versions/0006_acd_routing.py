"""acd routing: skills, reason and wrap-up codes, schedules, queue rules

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

New tenant tables (skills, agent_skills, queue_skills, reason_codes,
wrap_up_codes, schedules) get row-level security like every tenant table.
Queues gain their routing rules, queue members the strategies' counters,
agents after-call work, calls the routing facts and the disposition.  New
NOT NULL columns are filled for existing rows by a server default that is
dropped afterwards (the models own the defaults).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

NEW_TENANT_TABLES = ['reason_codes', 'schedules', 'skills', 'wrap_up_codes', 'agent_skills', 'queue_skills']
# Column -> server default for existing rows, per table.
FILLED = {
    'calls': {'skills': sa.text("'[]'"), 'ring_group': sa.false()},
    'entry_points': {'priority': '0'},
    'queue_members': {'position': '0', 'calls_answered': '0', 'talk_s': '0'},
    'queues': {
        'max_wait_action': 'hangup', 'preferred_agent_timeout_s': '0', 'wrap_up_mode': 'none', 'wrap_up_s': '0',
        'wrap_up_max_s': '0', 'disposition_required': sa.false(), 'service_level_s': '20', 'announce_interval_s': '0',
        'closed_action': 'hangup',
    },
}


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reason_codes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_reason_codes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reason_codes')),
    sa.UniqueConstraint('tenant_id', 'code', name=op.f('uq_reason_codes_tenant_id_code')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_reason_codes_tenant_id_id'))
    )
    with op.batch_alter_table('reason_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reason_codes_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('schedules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('weekly', sa.JSON(), nullable=False),
    sa.Column('holidays', sa.JSON(), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_schedules_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_schedules_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_schedules_tenant_id_name'))
    )
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedules_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('skills',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_skills_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_skills')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_skills_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_skills_tenant_id_name'))
    )
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_skills_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('wrap_up_codes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_wrap_up_codes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wrap_up_codes')),
    sa.UniqueConstraint('tenant_id', 'code', name=op.f('uq_wrap_up_codes_tenant_id_code')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_wrap_up_codes_tenant_id_id'))
    )
    with op.batch_alter_table('wrap_up_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wrap_up_codes_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('agent_skills',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('skill_id', sa.Uuid(), nullable=False),
    sa.Column('proficiency', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'agent_id'], ['agents.tenant_id', 'agents.id'], name=op.f('fk_agent_skills_tenant_id_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'skill_id'], ['skills.tenant_id', 'skills.id'], name=op.f('fk_agent_skills_tenant_id_skill_id_skills'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_agent_skills_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_skills')),
    sa.UniqueConstraint('tenant_id', 'agent_id', 'skill_id', name=op.f('uq_agent_skills_tenant_id_agent_id_skill_id'))
    )
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_skills_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_skills_skill_id'), ['skill_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_skills_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('queue_skills',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=False),
    sa.Column('skill_id', sa.Uuid(), nullable=False),
    sa.Column('min_proficiency', sa.Integer(), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'queue_id'], ['queues.tenant_id', 'queues.id'], name=op.f('fk_queue_skills_tenant_id_queue_id_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'skill_id'], ['skills.tenant_id', 'skills.id'], name=op.f('fk_queue_skills_tenant_id_skill_id_skills'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_queue_skills_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_skills')),
    sa.UniqueConstraint('tenant_id', 'queue_id', 'skill_id', name=op.f('uq_queue_skills_tenant_id_queue_id_skill_id'))
    )
    with op.batch_alter_table('queue_skills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queue_skills_queue_id'), ['queue_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_skills_skill_id'), ['skill_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_skills_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wrap_up_call_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('wrap_up_until', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('wrap_up_started_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_entered_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('caller_ref', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('skills', sa.JSON(), nullable=False, server_default=FILLED['calls']['skills']))
        batch_op.add_column(sa.Column('preferred_agent_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('preferred_until', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ring_group', sa.Boolean(), nullable=False, server_default=FILLED['calls']['ring_group']))
        batch_op.add_column(sa.Column('callback_requested_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('callback_number', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('disposition_code', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('first_call_resolution', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('disposition_notes', sa.String(length=2000), nullable=True))
        batch_op.create_index('ix_calls_tenant_caller_ref', ['tenant_id', 'caller_ref'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_calls_tenant_id_preferred_agent_id_agents'), 'agents', ['tenant_id', 'preferred_agent_id'], ['tenant_id', 'id'], ondelete='CASCADE')

    with op.batch_alter_table('entry_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default=FILLED['entry_points']['priority']))

    with op.batch_alter_table('queue_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default=FILLED['queue_members']['position']))
        batch_op.add_column(sa.Column('last_offered_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('counters_day', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('calls_answered', sa.Integer(), nullable=False, server_default=FILLED['queue_members']['calls_answered']))
        batch_op.add_column(sa.Column('talk_s', sa.Integer(), nullable=False, server_default=FILLED['queue_members']['talk_s']))

    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ring_timeout_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_wait_action', sa.String(length=16), nullable=False, server_default=FILLED['queues']['max_wait_action']))
        batch_op.add_column(sa.Column('max_wait_queue_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('overflow_after_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('overflow_ratio', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('overflow_action', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('overflow_queue_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('relax_after_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('relax_any_after_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('preferred_agent_timeout_s', sa.Integer(), nullable=False, server_default=FILLED['queues']['preferred_agent_timeout_s']))
        batch_op.add_column(sa.Column('wrap_up_mode', sa.String(length=16), nullable=False, server_default=FILLED['queues']['wrap_up_mode']))
        batch_op.add_column(sa.Column('wrap_up_s', sa.Integer(), nullable=False, server_default=FILLED['queues']['wrap_up_s']))
        batch_op.add_column(sa.Column('wrap_up_max_s', sa.Integer(), nullable=False, server_default=FILLED['queues']['wrap_up_max_s']))
        batch_op.add_column(sa.Column('disposition_required', sa.Boolean(), nullable=False, server_default=FILLED['queues']['disposition_required']))
        batch_op.add_column(sa.Column('service_level_s', sa.Integer(), nullable=False, server_default=FILLED['queues']['service_level_s']))
        batch_op.add_column(sa.Column('announce_interval_s', sa.Integer(), nullable=False, server_default=FILLED['queues']['announce_interval_s']))
        batch_op.add_column(sa.Column('schedule_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('closed_action', sa.String(length=16), nullable=False, server_default=FILLED['queues']['closed_action']))
        batch_op.create_foreign_key(batch_op.f('fk_queues_tenant_id_max_wait_queue_id_queues'), 'queues', ['tenant_id', 'max_wait_queue_id'], ['tenant_id', 'id'])
        batch_op.create_foreign_key(batch_op.f('fk_queues_tenant_id_overflow_queue_id_queues'), 'queues', ['tenant_id', 'overflow_queue_id'], ['tenant_id', 'id'])
        batch_op.create_foreign_key(batch_op.f('fk_queues_tenant_id_schedule_id_schedules'), 'schedules', ['tenant_id', 'schedule_id'], ['tenant_id', 'id'])

    for table, columns in FILLED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, server_default=None)
    for table in NEW_TENANT_TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in NEW_TENANT_TABLES:
        disable_tenant_rls(table)
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_queues_tenant_id_schedule_id_schedules'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_queues_tenant_id_overflow_queue_id_queues'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_queues_tenant_id_max_wait_queue_id_queues'), type_='foreignkey')
        batch_op.drop_column('closed_action')
        batch_op.drop_column('schedule_id')
        batch_op.drop_column('announce_interval_s')
        batch_op.drop_column('service_level_s')
        batch_op.drop_column('disposition_required')
        batch_op.drop_column('wrap_up_max_s')
        batch_op.drop_column('wrap_up_s')
        batch_op.drop_column('wrap_up_mode')
        batch_op.drop_column('preferred_agent_timeout_s')
        batch_op.drop_column('relax_any_after_s')
        batch_op.drop_column('relax_after_s')
        batch_op.drop_column('overflow_queue_id')
        batch_op.drop_column('overflow_action')
        batch_op.drop_column('overflow_ratio')
        batch_op.drop_column('overflow_after_s')
        batch_op.drop_column('max_wait_queue_id')
        batch_op.drop_column('max_wait_action')
        batch_op.drop_column('ring_timeout_s')

    with op.batch_alter_table('queue_members', schema=None) as batch_op:
        batch_op.drop_column('talk_s')
        batch_op.drop_column('calls_answered')
        batch_op.drop_column('counters_day')
        batch_op.drop_column('last_offered_at')
        batch_op.drop_column('position')

    with op.batch_alter_table('entry_points', schema=None) as batch_op:
        batch_op.drop_column('priority')

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_calls_tenant_id_preferred_agent_id_agents'), type_='foreignkey')
        batch_op.drop_index('ix_calls_tenant_caller_ref')
        batch_op.drop_column('disposition_notes')
        batch_op.drop_column('first_call_resolution')
        batch_op.drop_column('disposition_code')
        batch_op.drop_column('callback_number')
        batch_op.drop_column('callback_requested_at')
        batch_op.drop_column('ring_group')
        batch_op.drop_column('preferred_until')
        batch_op.drop_column('preferred_agent_id')
        batch_op.drop_column('skills')
        batch_op.drop_column('caller_ref')
        batch_op.drop_column('queue_entered_at')

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('wrap_up_started_at')
        batch_op.drop_column('wrap_up_until')
        batch_op.drop_column('wrap_up_call_id')

    with op.batch_alter_table('queue_skills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queue_skills_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_queue_skills_skill_id'))
        batch_op.drop_index(batch_op.f('ix_queue_skills_queue_id'))

    op.drop_table('queue_skills')
    with op.batch_alter_table('agent_skills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_skills_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_agent_skills_skill_id'))
        batch_op.drop_index(batch_op.f('ix_agent_skills_agent_id'))

    op.drop_table('agent_skills')
    with op.batch_alter_table('wrap_up_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wrap_up_codes_tenant_id'))

    op.drop_table('wrap_up_codes')
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_skills_tenant_id'))

    op.drop_table('skills')
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedules_tenant_id'))

    op.drop_table('schedules')
    with op.batch_alter_table('reason_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reason_codes_tenant_id'))

    op.drop_table('reason_codes')
