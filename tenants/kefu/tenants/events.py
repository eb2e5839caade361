"""Typed tenant events of the contact center, written to the outbox in the same
transaction as the state change they describe (published after commit).

* ``call.state_changed`` — a call was created (queued), offered (ringing),
  answered (connected), put back in its queue (queued) or ended; readers need
  ``calls.read`` (supervisors, admins, QA, reports).
* ``agent.state_changed`` — an agent's chosen status or its system state
  changed (lease renewals alone emit nothing); readers need ``acd.agents.read``.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.events import TenantEvent, emit
from kefu.tenants.models import Agent
from kefu.tenants.reports.marks import log_agent_state


class CallStateChanged(TenantEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "call.state_changed"
    permission: ClassVar[str] = "calls.read"

    call_id: uuid.UUID
    status: str
    queue_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    end_reason: str | None = None


class AgentStateChanged(TenantEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "agent.state_changed"
    permission: ClassVar[str] = "acd.agents.read"

    agent_id: uuid.UUID
    status: str
    system_state: str
    not_ready_reason: str | None = None


async def call_state_changed(
    session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, status: str, queue_id: uuid.UUID | None,
    agent_id: uuid.UUID | None = None, end_reason: str | None = None,
) -> None:
    await emit(session, CallStateChanged(
        tenant_id=tenant_id, call_id=call_id, status=status, queue_id=queue_id, agent_id=agent_id, end_reason=end_reason,
    ))


async def agent_state_changed(session: AsyncSession, agent: Agent) -> None:
    """The agent's status or system state changed: the typed event, and the presence log's row."""
    await log_agent_state(session, agent)
    await emit(session, AgentStateChanged(
        tenant_id=agent.tenant_id, agent_id=agent.id, status=agent.status, system_state=agent.system_state,
        not_ready_reason=agent.not_ready_reason,
    ))
