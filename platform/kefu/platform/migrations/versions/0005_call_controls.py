"""call controls: hold, mute, recording pause, supervisor, consultation on calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

``calls`` gains the in-call control state the media routing follows from.
No new tables, so no new row-level security policies.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_hold', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('agent_muted', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('recording_paused', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('supervisor_user_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('supervisor_mode', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('taken_over', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('consult_agent_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('consult_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('consult_offered_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_calls_tenant_id_consult_agent_id_agents'), 'agents',
            ['tenant_id', 'consult_agent_id'], ['tenant_id', 'id'], ondelete='CASCADE',
        )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        for column in ('on_hold', 'agent_muted', 'recording_paused', 'taken_over'):
            batch_op.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_calls_tenant_id_consult_agent_id_agents'), type_='foreignkey')
        for column in ('consult_offered_at', 'consult_state', 'consult_agent_id', 'taken_over', 'supervisor_mode', 'supervisor_user_id', 'recording_paused', 'agent_muted', 'on_hold'):
            batch_op.drop_column(column)
