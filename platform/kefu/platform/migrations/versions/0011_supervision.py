"""teams, supervisor assignments of teams and queues

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import kefu.platform.db.base  # noqa: F401
from kefu.platform.db.rls import disable_tenant_rls, enable_tenant_rls  # noqa: F401

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES: list[str] = []


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
