"""identity: refresh-token families for rotation and reuse detection

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

``refresh_tokens.family_id`` groups the tokens rotated from one log-in;
``rotated_at`` marks a token exchanged for its successor, so presenting it
again is recognised as reuse.  Existing tokens each become their own family.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('rotated_at', kefu.platform.db.base.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE refresh_tokens SET family_id = id")
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.alter_column('family_id', existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_family_id'), ['family_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_family_id'))
        batch_op.drop_column('rotated_at')
        batch_op.drop_column('family_id')
