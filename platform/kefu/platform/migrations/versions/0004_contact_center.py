"""contact-center tables (reserved)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kefu.platform.db.base
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
