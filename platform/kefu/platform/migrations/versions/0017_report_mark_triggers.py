"""report marks written by the database

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-24

Every row inserted into ``call_events`` marks its call dirty for the rollup job
(``report_dirty_calls``: inserted at version 1, else ``version + 1``), and every
row inserted into ``agent_events`` its agent (``report_dirty_agents``, ``since``
the earliest change not rolled up).  The contact center wrote both upserts itself
after each append, in the same transaction: two to four statements a call that
the database now does as part of the insert (docs/reports.md, "Upkeep and rebuild").

PostgreSQL: statement-level triggers over the inserted rows (one upsert per
insert statement, however many events it carries; row-level security applies
as to the application's own writes).  SQLite: row-level triggers.
"""
from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

POSTGRES_UP = [
    """
    CREATE FUNCTION kefu_mark_calls_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO report_dirty_calls (tenant_id, id, call_id, version)
        SELECT tenant_id, gen_random_uuid(), call_id, 1 FROM (SELECT DISTINCT tenant_id, call_id FROM appended) AS calls
        ON CONFLICT (tenant_id, call_id) DO UPDATE SET version = report_dirty_calls.version + 1;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_call_events_mark_dirty AFTER INSERT ON call_events
    REFERENCING NEW TABLE AS appended FOR EACH STATEMENT EXECUTE FUNCTION kefu_mark_calls_dirty()
    """,
    """
    CREATE FUNCTION kefu_mark_agents_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO report_dirty_agents (tenant_id, id, agent_id, since, version)
        SELECT tenant_id, gen_random_uuid(), agent_id, min(at), 1 FROM appended GROUP BY tenant_id, agent_id
        ON CONFLICT (tenant_id, agent_id) DO UPDATE
            SET version = report_dirty_agents.version + 1, since = least(report_dirty_agents.since, excluded.since);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_agent_events_mark_dirty AFTER INSERT ON agent_events
    REFERENCING NEW TABLE AS appended FOR EACH STATEMENT EXECUTE FUNCTION kefu_mark_agents_dirty()
    """,
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS trg_agent_events_mark_dirty ON agent_events",
    "DROP FUNCTION IF EXISTS kefu_mark_agents_dirty()",
    "DROP TRIGGER IF EXISTS trg_call_events_mark_dirty ON call_events",
    "DROP FUNCTION IF EXISTS kefu_mark_calls_dirty()",
]

# SQLite stores a UUID as 32 hex digits and a UTC time as text that sorts as it compares.
SQLITE_UP = [
    """
    CREATE TRIGGER trg_call_events_mark_dirty AFTER INSERT ON call_events
    BEGIN
        INSERT INTO report_dirty_calls (tenant_id, id, call_id, version)
        VALUES (NEW.tenant_id, lower(hex(randomblob(16))), NEW.call_id, 1)
        ON CONFLICT (tenant_id, call_id) DO UPDATE SET version = version + 1;
    END
    """,
    """
    CREATE TRIGGER trg_agent_events_mark_dirty AFTER INSERT ON agent_events
    BEGIN
        INSERT INTO report_dirty_agents (tenant_id, id, agent_id, since, version)
        VALUES (NEW.tenant_id, lower(hex(randomblob(16))), NEW.agent_id, NEW.at, 1)
        ON CONFLICT (tenant_id, agent_id) DO UPDATE SET version = version + 1, since = min(since, excluded.since);
    END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS trg_agent_events_mark_dirty",
    "DROP TRIGGER IF EXISTS trg_call_events_mark_dirty",
]


def upgrade() -> None:
    for statement in POSTGRES_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in POSTGRES_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
