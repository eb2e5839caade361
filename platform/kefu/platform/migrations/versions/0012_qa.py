"""quality assurance: scorecards, evaluations, sampling, calibration, disputes, exemplary calls

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23

Twelve tenant tables, each with row-level security like every tenant table
(docs/qa.md): scorecards and their immutable published versions, evaluations
and the calls they cover, sampling policies with their queues and reviewers,
the work items they fill, calibration sessions with their reviewers, and the
exemplary-call library with its tags.  References carry the tenant
(composite foreign keys); nullable ones do not cascade.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TABLES = ['qa_scorecards', 'qa_sampling_policies', 'qa_scorecard_versions', 'qa_sampling_policy_queues', 'qa_sampling_policy_reviewers', 'qa_calibrations', 'qa_library_items', 'qa_calibration_reviewers', 'qa_evaluations', 'qa_library_tags', 'qa_evaluation_calls', 'qa_work_items']


def upgrade() -> None:
    op.create_table('qa_scorecards',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=True),
    sa.Column('draft', sa.JSON(), nullable=False),
    sa.Column('draft_updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_version', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('retired_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_scorecards_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_scorecards')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_scorecards_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_qa_scorecards_tenant_id_name'))
    )
    with op.batch_alter_table('qa_scorecards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_scorecards_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_sampling_policies',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scorecard_id', sa.Uuid(), nullable=False),
    sa.Column('qa_type', sa.String(length=16), nullable=False),
    sa.Column('calls_per_agent', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('min_duration_s', sa.Integer(), nullable=False),
    sa.Column('disposition_codes', sa.JSON(), nullable=False),
    sa.Column('recorded_only', sa.Boolean(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('assigned_count', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'scorecard_id'], ['qa_scorecards.tenant_id', 'qa_scorecards.id'], name=op.f('fk_qa_sampling_policies_tenant_id_scorecard_id_qa_scorecards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_sampling_policies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_sampling_policies')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_sampling_policies_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_qa_sampling_policies_tenant_id_name'))
    )
    with op.batch_alter_table('qa_sampling_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_sampling_policies_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_scorecard_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('scorecard_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('published_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=128), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'scorecard_id'], ['qa_scorecards.tenant_id', 'qa_scorecards.id'], name=op.f('fk_qa_scorecard_versions_tenant_id_scorecard_id_qa_scorecards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_scorecard_versions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_scorecard_versions')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_scorecard_versions_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'scorecard_id', 'number', name=op.f('uq_qa_scorecard_versions_tenant_id_scorecard_id_number'))
    )
    with op.batch_alter_table('qa_scorecard_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_scorecard_versions_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_sampling_policy_queues',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('policy_id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'policy_id'], ['qa_sampling_policies.tenant_id', 'qa_sampling_policies.id'], name=op.f('fk_qa_sampling_policy_queues_tenant_id_policy_id_qa_sampling_policies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'queue_id'], ['queues.tenant_id', 'queues.id'], name=op.f('fk_qa_sampling_policy_queues_tenant_id_queue_id_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_sampling_policy_queues_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_sampling_policy_queues')),
    sa.UniqueConstraint('tenant_id', 'policy_id', 'queue_id', name=op.f('uq_qa_sampling_policy_queues_tenant_id_policy_id_queue_id'))
    )
    with op.batch_alter_table('qa_sampling_policy_queues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_sampling_policy_queues_queue_id'), ['queue_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_sampling_policy_queues_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_sampling_policy_reviewers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('policy_id', sa.Uuid(), nullable=False),
    sa.Column('reviewer_user_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'policy_id'], ['qa_sampling_policies.tenant_id', 'qa_sampling_policies.id'], name=op.f('fk_qa_sampling_policy_reviewers_tenant_id_policy_id_qa_sampling_policies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'reviewer_user_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_qa_sampling_policy_reviewers_tenant_id_reviewer_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_sampling_policy_reviewers_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_sampling_policy_reviewers')),
    sa.UniqueConstraint('tenant_id', 'policy_id', 'reviewer_user_id', name=op.f('uq_qa_sampling_policy_reviewers_tenant_id_policy_id_reviewer_user_id'))
    )
    with op.batch_alter_table('qa_sampling_policy_reviewers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_sampling_policy_reviewers_reviewer_user_id'), ['reviewer_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_sampling_policy_reviewers_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_calibrations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('scorecard_version_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_qa_calibrations_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'scorecard_version_id'], ['qa_scorecard_versions.tenant_id', 'qa_scorecard_versions.id'], name=op.f('fk_qa_calibrations_tenant_id_scorecard_version_id_qa_scorecard_versions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_calibrations_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_calibrations')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_calibrations_tenant_id_id'))
    )
    with op.batch_alter_table('qa_calibrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_calibrations_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_calibrations_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_library_items',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('filed_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_qa_library_items_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_library_items_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_library_items')),
    sa.UniqueConstraint('tenant_id', 'call_id', name=op.f('uq_qa_library_items_tenant_id_call_id')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_library_items_tenant_id_id'))
    )
    with op.batch_alter_table('qa_library_items', schema=None) as batch_op:
        batch_op.create_index('ix_qa_library_items_tenant_created', ['tenant_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_library_items_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_calibration_reviewers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('calibration_id', sa.Uuid(), nullable=False),
    sa.Column('reviewer_user_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'calibration_id'], ['qa_calibrations.tenant_id', 'qa_calibrations.id'], name=op.f('fk_qa_calibration_reviewers_tenant_id_calibration_id_qa_calibrations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'reviewer_user_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_qa_calibration_reviewers_tenant_id_reviewer_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_calibration_reviewers_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_calibration_reviewers')),
    sa.UniqueConstraint('tenant_id', 'calibration_id', 'reviewer_user_id', name=op.f('uq_qa_calibration_reviewers_tenant_id_calibration_id_reviewer_user_id'))
    )
    with op.batch_alter_table('qa_calibration_reviewers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_calibration_reviewers_reviewer_user_id'), ['reviewer_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_calibration_reviewers_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_evaluations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('scorecard_id', sa.Uuid(), nullable=False),
    sa.Column('scorecard_version_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('qa_type', sa.String(length=16), nullable=False),
    sa.Column('business_type', sa.String(length=64), nullable=False),
    sa.Column('reviewer_user_id', sa.Uuid(), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=True),
    sa.Column('start_serial', sa.String(length=32), nullable=False),
    sa.Column('end_serial', sa.String(length=32), nullable=False),
    sa.Column('call_duration_s', sa.Integer(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('comments', sa.Text(), nullable=True),
    sa.Column('total_score', sa.Float(), nullable=True),
    sa.Column('grade', sa.String(length=16), nullable=True),
    sa.Column('auto_failed', sa.Boolean(), nullable=False),
    sa.Column('started_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disputed_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('dispute_reason', sa.String(length=2000), nullable=True),
    sa.Column('second_reviewer_user_id', sa.Uuid(), nullable=True),
    sa.Column('second_reviewed_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('second_review_outcome', sa.String(length=16), nullable=True),
    sa.Column('second_review_comments', sa.Text(), nullable=True),
    sa.Column('original_answers', sa.JSON(), nullable=True),
    sa.Column('original_total_score', sa.Float(), nullable=True),
    sa.Column('original_grade', sa.String(length=16), nullable=True),
    sa.Column('calibration_id', sa.Uuid(), nullable=True),
    sa.Column('updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'agent_id'], ['agents.tenant_id', 'agents.id'], name=op.f('fk_qa_evaluations_tenant_id_agent_id_agents')),
    sa.ForeignKeyConstraint(['tenant_id', 'calibration_id'], ['qa_calibrations.tenant_id', 'qa_calibrations.id'], name=op.f('fk_qa_evaluations_tenant_id_calibration_id_qa_calibrations')),
    sa.ForeignKeyConstraint(['tenant_id', 'queue_id'], ['queues.tenant_id', 'queues.id'], name=op.f('fk_qa_evaluations_tenant_id_queue_id_queues')),
    sa.ForeignKeyConstraint(['tenant_id', 'reviewer_user_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_qa_evaluations_tenant_id_reviewer_user_id_users')),
    sa.ForeignKeyConstraint(['tenant_id', 'scorecard_id'], ['qa_scorecards.tenant_id', 'qa_scorecards.id'], name=op.f('fk_qa_evaluations_tenant_id_scorecard_id_qa_scorecards')),
    sa.ForeignKeyConstraint(['tenant_id', 'scorecard_version_id'], ['qa_scorecard_versions.tenant_id', 'qa_scorecard_versions.id'], name=op.f('fk_qa_evaluations_tenant_id_scorecard_version_id_qa_scorecard_versions')),
    sa.ForeignKeyConstraint(['tenant_id', 'second_reviewer_user_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_qa_evaluations_tenant_id_second_reviewer_user_id_users')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_evaluations_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_evaluations')),
    sa.UniqueConstraint('tenant_id', 'calibration_id', 'reviewer_user_id', name=op.f('uq_qa_evaluations_tenant_id_calibration_id_reviewer_user_id')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_evaluations_tenant_id_id'))
    )
    with op.batch_alter_table('qa_evaluations', schema=None) as batch_op:
        batch_op.create_index('ix_qa_evaluations_tenant_agent_started', ['tenant_id', 'agent_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_evaluations_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_qa_evaluations_tenant_serials', ['tenant_id', 'start_serial', 'end_serial'], unique=False)
        batch_op.create_index('ix_qa_evaluations_tenant_started', ['tenant_id', 'started_at'], unique=False)
        batch_op.create_index('ix_qa_evaluations_tenant_submitted', ['tenant_id', 'submitted_at'], unique=False)

    op.create_table('qa_library_tags',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'item_id'], ['qa_library_items.tenant_id', 'qa_library_items.id'], name=op.f('fk_qa_library_tags_tenant_id_item_id_qa_library_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_library_tags_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_library_tags')),
    sa.UniqueConstraint('tenant_id', 'item_id', 'tag', name=op.f('uq_qa_library_tags_tenant_id_item_id_tag'))
    )
    with op.batch_alter_table('qa_library_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_library_tags_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_qa_library_tags_tenant_tag', ['tenant_id', 'tag'], unique=False)

    op.create_table('qa_evaluation_calls',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('evaluation_id', sa.Uuid(), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_qa_evaluation_calls_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'evaluation_id'], ['qa_evaluations.tenant_id', 'qa_evaluations.id'], name=op.f('fk_qa_evaluation_calls_tenant_id_evaluation_id_qa_evaluations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_evaluation_calls_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_evaluation_calls')),
    sa.UniqueConstraint('tenant_id', 'evaluation_id', 'call_id', name=op.f('uq_qa_evaluation_calls_tenant_id_evaluation_id_call_id'))
    )
    with op.batch_alter_table('qa_evaluation_calls', schema=None) as batch_op:
        batch_op.create_index('ix_qa_evaluation_calls_tenant_call', ['tenant_id', 'call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qa_evaluation_calls_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('qa_work_items',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('policy_id', sa.Uuid(), nullable=False),
    sa.Column('period_start', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('call_id', sa.Uuid(), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('reviewer_user_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('evaluation_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'agent_id'], ['agents.tenant_id', 'agents.id'], name=op.f('fk_qa_work_items_tenant_id_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'call_id'], ['calls.tenant_id', 'calls.id'], name=op.f('fk_qa_work_items_tenant_id_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'evaluation_id'], ['qa_evaluations.tenant_id', 'qa_evaluations.id'], name=op.f('fk_qa_work_items_tenant_id_evaluation_id_qa_evaluations')),
    sa.ForeignKeyConstraint(['tenant_id', 'policy_id'], ['qa_sampling_policies.tenant_id', 'qa_sampling_policies.id'], name=op.f('fk_qa_work_items_tenant_id_policy_id_qa_sampling_policies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'reviewer_user_id'], ['users.tenant_id', 'users.id'], name=op.f('fk_qa_work_items_tenant_id_reviewer_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_qa_work_items_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_work_items')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_qa_work_items_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'policy_id', 'period_start', 'call_id', name=op.f('uq_qa_work_items_tenant_id_policy_id_period_start_call_id'))
    )
    with op.batch_alter_table('qa_work_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qa_work_items_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_qa_work_items_tenant_reviewer_status', ['tenant_id', 'reviewer_user_id', 'status'], unique=False)

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    with op.batch_alter_table('qa_work_items', schema=None) as batch_op:
        batch_op.drop_index('ix_qa_work_items_tenant_reviewer_status')
        batch_op.drop_index(batch_op.f('ix_qa_work_items_tenant_id'))

    op.drop_table('qa_work_items')
    with op.batch_alter_table('qa_evaluation_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_evaluation_calls_tenant_id'))
        batch_op.drop_index('ix_qa_evaluation_calls_tenant_call')

    op.drop_table('qa_evaluation_calls')
    with op.batch_alter_table('qa_library_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_qa_library_tags_tenant_tag')
        batch_op.drop_index(batch_op.f('ix_qa_library_tags_tenant_id'))

    op.drop_table('qa_library_tags')
    with op.batch_alter_table('qa_evaluations', schema=None) as batch_op:
        batch_op.drop_index('ix_qa_evaluations_tenant_submitted')
        batch_op.drop_index('ix_qa_evaluations_tenant_started')
        batch_op.drop_index('ix_qa_evaluations_tenant_serials')
        batch_op.drop_index(batch_op.f('ix_qa_evaluations_tenant_id'))
        batch_op.drop_index('ix_qa_evaluations_tenant_agent_started')

    op.drop_table('qa_evaluations')
    with op.batch_alter_table('qa_calibration_reviewers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_calibration_reviewers_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_qa_calibration_reviewers_reviewer_user_id'))

    op.drop_table('qa_calibration_reviewers')
    with op.batch_alter_table('qa_library_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_library_items_tenant_id'))
        batch_op.drop_index('ix_qa_library_items_tenant_created')

    op.drop_table('qa_library_items')
    with op.batch_alter_table('qa_calibrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_calibrations_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_qa_calibrations_call_id'))

    op.drop_table('qa_calibrations')
    with op.batch_alter_table('qa_sampling_policy_reviewers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_sampling_policy_reviewers_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_qa_sampling_policy_reviewers_reviewer_user_id'))

    op.drop_table('qa_sampling_policy_reviewers')
    with op.batch_alter_table('qa_sampling_policy_queues', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_sampling_policy_queues_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_qa_sampling_policy_queues_queue_id'))

    op.drop_table('qa_sampling_policy_queues')
    with op.batch_alter_table('qa_scorecard_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_scorecard_versions_tenant_id'))

    op.drop_table('qa_scorecard_versions')
    with op.batch_alter_table('qa_sampling_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_sampling_policies_tenant_id'))

    op.drop_table('qa_sampling_policies')
    with op.batch_alter_table('qa_scorecards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qa_scorecards_tenant_id'))

    op.drop_table('qa_scorecards')
