"""scheduled reports: report_schedules and report_deliveries

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23

Tenant tables with row-level security: report_schedules (a report, a relative
period, a cadence in the tenant's time zone, e-mail addresses and/or a webhook
with its signing secret, and next_due_at) and report_deliveries (one row per
schedule and due time, unique: the claim of a delivery, with its attempts).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

TABLES: list[str] = ['report_schedules', 'report_deliveries']


def upgrade() -> None:
    op.create_table('report_schedules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dimension', sa.String(length=8), nullable=False),
    sa.Column('interval', sa.String(length=8), nullable=False),
    sa.Column('queue_id', sa.Uuid(), nullable=True),
    sa.Column('team_id', sa.Uuid(), nullable=True),
    sa.Column('agent_id', sa.Uuid(), nullable=True),
    sa.Column('period', sa.String(length=20), nullable=False),
    sa.Column('format', sa.String(length=4), nullable=False),
    sa.Column('cadence', sa.String(length=8), nullable=False),
    sa.Column('time_of_day', sa.String(length=5), nullable=False),
    sa.Column('weekday', sa.String(length=3), nullable=True),
    sa.Column('day_of_month', sa.Integer(), nullable=True),
    sa.Column('emails', sa.JSON(), nullable=False),
    sa.Column('webhook_url', sa.String(length=2000), nullable=True),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('next_due_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_schedules_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_schedules')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_report_schedules_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_report_schedules_tenant_id_name'))
    )
    with op.batch_alter_table('report_schedules', schema=None) as batch_op:
        batch_op.create_index('ix_report_schedules_due', ['enabled', 'next_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_schedules_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('report_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('schedule_id', sa.Uuid(), nullable=False),
    sa.Column('due_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('trigger', sa.String(length=8), nullable=False),
    sa.Column('period_from', sa.String(length=10), nullable=False),
    sa.Column('period_to', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('email_sent', sa.Boolean(), nullable=False),
    sa.Column('webhook_sent', sa.Boolean(), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'schedule_id'], ['report_schedules.tenant_id', 'report_schedules.id'], name=op.f('fk_report_deliveries_tenant_id_schedule_id_report_schedules'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_deliveries_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_deliveries')),
    sa.UniqueConstraint('tenant_id', 'schedule_id', 'due_at', name=op.f('uq_report_deliveries_tenant_id_schedule_id_due_at'))
    )
    with op.batch_alter_table('report_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_deliveries_tenant_id'), ['tenant_id'], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
    with op.batch_alter_table('report_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_deliveries_tenant_id'))

    op.drop_table('report_deliveries')
    with op.batch_alter_table('report_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_schedules_tenant_id'))
        batch_op.drop_index('ix_report_schedules_due')

    op.drop_table('report_schedules')
