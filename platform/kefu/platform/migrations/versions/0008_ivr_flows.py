"""ivr flows: drafts, published versions, lookup addresses

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23

Three tenant tables with row-level security like every tenant table.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TABLES = ['ivr_flows', 'ivr_flow_versions', 'ivr_lookup_addresses']


def upgrade() -> None:
    op.create_table('ivr_flows',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('draft', sa.JSON(), nullable=False),
    sa.Column('draft_updated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_version', sa.Integer(), nullable=True),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ivr_flows_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ivr_flows')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_ivr_flows_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_ivr_flows_tenant_id_name'))
    )
    op.create_index(op.f('ix_ivr_flows_tenant_id'), 'ivr_flows', ['tenant_id'], unique=False)
    op.create_table('ivr_flow_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('flow_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('published_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=128), nullable=False),
    sa.Column('restored_from', sa.Integer(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'flow_id'], ['ivr_flows.tenant_id', 'ivr_flows.id'], name=op.f('fk_ivr_flow_versions_tenant_id_ivr_flows'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ivr_flow_versions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ivr_flow_versions')),
    sa.UniqueConstraint('tenant_id', 'flow_id', 'number', name=op.f('uq_ivr_flow_versions_tenant_id_flow_id_number')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_ivr_flow_versions_tenant_id_id'))
    )
    op.create_index(op.f('ix_ivr_flow_versions_tenant_id'), 'ivr_flow_versions', ['tenant_id'], unique=False)
    op.create_table('ivr_lookup_addresses',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('prefix', sa.String(length=300), nullable=False),
    sa.Column('created_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ivr_lookup_addresses_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ivr_lookup_addresses')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_ivr_lookup_addresses_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'prefix', name=op.f('uq_ivr_lookup_addresses_tenant_id_prefix'))
    )
    op.create_index(op.f('ix_ivr_lookup_addresses_tenant_id'), 'ivr_lookup_addresses', ['tenant_id'], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_index(op.f(f'ix_{table}_tenant_id'), table_name=table)
        op.drop_table(table)
