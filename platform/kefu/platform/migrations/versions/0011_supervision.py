"""supervision: teams, supervisors assigned to teams and queues

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23

Three tenant tables with row-level security like every tenant table: teams,
team_supervisors and queue_supervisors (what a supervisor sees on the
console and may act on).  Agents gain the team they belong to; the foreign
key does not cascade: deleting a team first takes its agents out of it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES = ['teams', 'team_supervisors', 'queue_supervisors']


def upgrade() -> None:
    op.create_table('teams',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_teams_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_teams_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_teams_tenant_id_name'))
    )
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teams_tenant_id'), ['tenant_id'], unique=False)

    for table, column, target in (('team_supervisors', 'team_id', 'teams'), ('queue_supervisors', 'queue_id', 'queues')):
        op.create_table(table,
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column(column, sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id', column], [f'{target}.tenant_id', f'{target}.id'], name=op.f(f'fk_{table}_tenant_id_{column}_{target}'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tenant_id', 'user_id'], ['users.tenant_id', 'users.id'], name=op.f(f'fk_{table}_tenant_id_user_id_users'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f(f'fk_{table}_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
        sa.UniqueConstraint('tenant_id', column, 'user_id', name=op.f(f'uq_{table}_tenant_id_{column}_user_id'))
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f'ix_{table}_tenant_id'), ['tenant_id'], unique=False)
            batch_op.create_index(batch_op.f(f'ix_{table}_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_agents_team_id'), ['team_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_agents_tenant_id_team_id_teams'), 'teams', ['tenant_id', 'team_id'], ['tenant_id', 'id'])

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(table)
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_agents_tenant_id_team_id_teams'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_agents_team_id'))
        batch_op.drop_column('team_id')
    for table in ('queue_supervisors', 'team_supervisors', 'teams'):
        op.drop_table(table)
