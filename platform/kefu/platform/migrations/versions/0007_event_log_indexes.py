"""event log indexes: drop the ones the composite indexes already serve

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

Every call writes one ``calls`` row and several ``call_events`` rows, and each
index is one more write per row.  ``tenant_id`` leads the calls' unique
(tenant_id, id) and the event log's unique (tenant_id, call_id, seq), which
serve every lookup (and the cascades) the single-column indexes on
``calls.tenant_id``, ``call_events.tenant_id`` and ``call_events.call_id`` did.
"""
from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

DROPPED = [
    ('ix_calls_tenant_id', 'calls', ['tenant_id']),
    ('ix_call_events_tenant_id', 'call_events', ['tenant_id']),
    ('ix_call_events_call_id', 'call_events', ['call_id']),
]


def upgrade() -> None:
    for name, table, _columns in DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in DROPPED:
        op.create_index(name, table, columns, unique=False)
