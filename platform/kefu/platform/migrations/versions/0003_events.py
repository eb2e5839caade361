"""events and jobs tables: job_runs (idempotency keys of completed tenant jobs)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('job', sa.String(length=200), nullable=False),
    sa.Column('completed_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_job_runs_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    sa.UniqueConstraint('tenant_id', 'key', name=op.f('uq_job_runs_tenant_id_key'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_runs_tenant_id'), ['tenant_id'], unique=False)
    enable_tenant_rls('job_runs')


def downgrade() -> None:
    disable_tenant_rls('job_runs')
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_runs_tenant_id'))
    op.drop_table('job_runs')
