"""What the contact center writes for reporting inside its own transactions: the
agent presence log (one ``agent_events`` row per state change) and the "dirty"
markers that tell the rollup job which calls and agents to recompute.

The markers are upserts (``version = version + 1``) that do not flush the
session: append_event's batching is kept, and no marker has a foreign key that
a not-yet-flushed row could violate.  The rollup job deletes a marker only at
the version it read (kefu.tenants.reports.upkeep), so an append committing while
the job runs leaves its call dirty for the next run, whatever the commit order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.tenants.models import Agent, AgentEvent, ReportDirtyAgent, ReportDirtyCall

# Per transaction (session.info): the calls already marked dirty.
_MARKED = "kefu.reports.dirty_calls"


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` for the session's database."""
    return _insert_for(_dialect_name(session))(table)


def _dialect_name(session: AsyncSession) -> str:
    bind = session.bind
    return "postgresql" if bind is not None and bind.dialect.name == "postgresql" else "sqlite"


def _insert_for(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _dirty_call_upsert(dialect: str) -> Any:
    insert = _insert_for(dialect)(ReportDirtyCall)
    return insert.values(
        tenant_id=bindparam("tenant_id"), id=bindparam("id"), call_id=bindparam("call_id"), version=1,
    ).on_conflict_do_update(index_elements=["tenant_id", "call_id"], set_={"version": ReportDirtyCall.version + 1})


def _dirty_agent_upsert(dialect: str) -> Any:
    insert = _insert_for(dialect)(ReportDirtyAgent)
    return insert.values(
        tenant_id=bindparam("tenant_id"), id=bindparam("id"), agent_id=bindparam("agent_id"), since=bindparam("since"), version=1,
    ).on_conflict_do_update(
        index_elements=["tenant_id", "agent_id"],
        set_={
            "version": ReportDirtyAgent.version + 1,
            "since": case((insert.excluded.since < ReportDirtyAgent.since, insert.excluded.since), else_=ReportDirtyAgent.since),
        },
    )


# Built once per database kind (several per call: building a statement costs about as much
# as running it); the values are bound at each execution.
_DIRTY_CALL = {dialect: _dirty_call_upsert(dialect) for dialect in ("postgresql", "sqlite")}
_DIRTY_AGENT = {dialect: _dirty_agent_upsert(dialect) for dialect in ("postgresql", "sqlite")}


async def mark_call_dirty(session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
    """Once per call per transaction: the call's log changed.

    Remembered per innermost transaction (a savepoint that rolls back takes its upsert
    with it, and the next append in the outer transaction marks the call again)."""
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    marked: set[tuple[Any, uuid.UUID]] = session.info.setdefault(_MARKED, set())
    if (transaction, call_id) in marked:
        return
    marked.add((transaction, call_id))
    with session.no_autoflush:
        await session.execute(_DIRTY_CALL[_dialect_name(session)], {"tenant_id": tenant_id, "id": uuid.uuid4(), "call_id": call_id})


async def mark_agent_dirty(session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, since: datetime) -> None:
    with session.no_autoflush:
        await session.execute(
            _DIRTY_AGENT[_dialect_name(session)], {"tenant_id": tenant_id, "id": uuid.uuid4(), "agent_id": agent_id, "since": since},
        )


async def log_agent_state(session: AsyncSession, agent: Agent) -> None:
    """Append the agent's new state to the presence log (called by events.agent_state_changed)."""
    at = agent.state_changed_at
    session.add(AgentEvent(
        tenant_id=agent.tenant_id, agent_id=agent.id, at=at, status=agent.status, system_state=agent.system_state,
        reason=agent.not_ready_reason, call_id=agent.current_call_id or agent.wrap_up_call_id,
    ))
    await mark_agent_dirty(session, tenant_id=agent.tenant_id, agent_id=agent.id, since=at)
