"""What the contact center writes for reporting inside its own transactions: the
agent presence log (one ``agent_events`` row per state change) and the "dirty"
markers that tell the rollup job which calls and agents to recompute.

The markers are upserts (``version = version + 1``).  The database writes them
itself for every row inserted into ``call_events`` (the call) and ``agent_events``
(the agent, ``since`` its earliest change): triggers of migration 0017, in the
same transaction as the insert, so they cost no statement here.  What changes a
report without such a row (an agent's shift) calls ``mark_agent_dirty``.  The
rollup job deletes a marker only at the version it read
(kefu.tenants.reports.upkeep), so an append committing while the job runs leaves
its call dirty for the next run, whatever the commit order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.tenants.models import Agent, AgentEvent, ReportDirtyAgent


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` for the session's database."""
    bind = session.bind
    return (postgresql.insert if bind is not None and bind.dialect.name == "postgresql" else sqlite.insert)(table)


async def mark_agent_dirty(session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, since: datetime) -> None:
    insert = dialect_insert(session, ReportDirtyAgent)
    statement = insert.values(tenant_id=tenant_id, id=uuid.uuid4(), agent_id=agent_id, since=since, version=1).on_conflict_do_update(
        index_elements=["tenant_id", "agent_id"],
        set_={
            "version": ReportDirtyAgent.version + 1,
            "since": case((insert.excluded.since < ReportDirtyAgent.since, insert.excluded.since), else_=ReportDirtyAgent.since),
        },
    )
    with session.no_autoflush:
        await session.execute(statement)


async def log_agent_state(session: AsyncSession, agent: Agent) -> None:
    """Append the agent's new state to the presence log (called by events.agent_state_changed)."""
    at = agent.state_changed_at
    session.add(AgentEvent(
        tenant_id=agent.tenant_id, agent_id=agent.id, at=at, status=agent.status, system_state=agent.system_state,
        reason=agent.not_ready_reason, call_id=agent.current_call_id or agent.wrap_up_call_id,
    ))
    # The insert marks the agent dirty from ``at`` on (report_dirty_agents, by a trigger: migration 0017).
