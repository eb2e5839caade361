"""a partial index of the live calls

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24

``ix_calls_live`` on calls (tenant_id, status) WHERE status <> 'ended': the
reconnect sweeper and the media orphan sweep (every few seconds, across
tenants) and the metrics scrape read the calls that are not over; without it
each read scanned the whole table, history included (docs/cluster-benchmark.md).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

LIVE = sa.text("status <> 'ended'")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY: calls keep being created and ended while a large table is indexed
        # (a plain CREATE INDEX would block every write to it until done).
        with op.get_context().autocommit_block():
            op.create_index('ix_calls_live', 'calls', ['tenant_id', 'status'], postgresql_where=LIVE,
                            postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index('ix_calls_live', 'calls', ['tenant_id', 'status'], sqlite_where=LIVE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index('ix_calls_live', table_name='calls', postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index('ix_calls_live', table_name='calls')
