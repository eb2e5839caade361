"""Row-level security DDL for PostgreSQL, used by the migrations.

Each tenant table gets RLS ENABLEd and FORCEd and one policy comparing
``tenant_id`` with the transaction-local setting ``kefu.tenant_id``.  With no
tenant set, ``NULLIF(..., '')::uuid`` is NULL and no row matches: a forgotten
tenant context reads nothing instead of everything.
"""

from __future__ import annotations

from alembic import op

POLICY = "tenant_isolation"
_TENANT_EXPR = "NULLIF(current_setting('kefu.tenant_id', true), '')::uuid"


def enable_tenant_rls(table: str, column: str = "tenant_id") -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
    op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
    op.execute(
        f'CREATE POLICY {POLICY} ON "{table}" '
        f"USING ({column} = {_TENANT_EXPR}) WITH CHECK ({column} = {_TENANT_EXPR})"
    )


def disable_tenant_rls(table: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"')
    op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
    op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
