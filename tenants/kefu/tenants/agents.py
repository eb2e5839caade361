"""Agents of a tenant: the seat holders the ACD routes to.

Creating an agent creates its user (role ``agent``) through identity's
services, then the ``agents`` row, in the caller's transaction.  Presence and
routing state live on the same row but are changed only by ``kefu.tenants.acd``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.billing import services as billing
from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.identity import services as identity
from kefu.platform.models import User
from kefu.platform.problems import Problem, not_found
from kefu.tenants.models import Agent, QueueMember


def ui_state(agent: Agent) -> str:
    """What the agent desktop shows: offline | available | not_ready | ringing | on_call | wrap_up."""
    if agent.system_state in ("reserved", "ringing"):
        return "ringing"
    if agent.system_state in ("on_call", "wrap_up"):
        return agent.system_state
    return agent.status


@dataclass(frozen=True)
class AgentView:
    id: uuid.UUID
    user_id: uuid.UUID
    email: str | None
    display_name: str
    status: str
    not_ready_reason: str | None
    system_state: str
    state: str
    current_call_id: uuid.UUID | None
    queue_ids: tuple[uuid.UUID, ...]


def check_display_name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200:
        raise Problem(400, "invalid_display_name", "the display name must have 1 to 200 characters")
    return value


async def _queue_ids(session: AsyncSession, *, tenant_id: uuid.UUID, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {a: [] for a in agent_ids}
    if agent_ids:
        rows = await session.execute(
            select(QueueMember.agent_id, QueueMember.queue_id).where(
                QueueMember.tenant_id == tenant_id, QueueMember.agent_id.in_(agent_ids)
            )
        )
        for agent_id, queue_id in rows:
            found[agent_id].append(queue_id)
    return {a: tuple(sorted(q, key=str)) for a, q in found.items()}


def _view(agent: Agent, email: str | None, queue_ids: tuple[uuid.UUID, ...]) -> AgentView:
    return AgentView(
        agent.id, agent.user_id, email, agent.display_name, agent.status, agent.not_ready_reason,
        agent.system_state, ui_state(agent), agent.current_call_id, queue_ids,
    )


async def seats_in_use(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """Seats held: agents whose user is not disabled (an invited agent holds its seat)."""
    return await session.scalar(
        select(func.count()).select_from(Agent).join(User, (User.tenant_id == Agent.tenant_id) & (User.id == Agent.user_id))
        .where(Agent.tenant_id == tenant_id, User.status != "disabled")
    ) or 0


async def before_user_enabled(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """A disabled agent's user enabled again needs a free seat (other users need none)."""
    user = await session.scalar(select(User).where(User.tenant_id == tenant_id, User.id == user_id))
    if user is None or user.status != "disabled" or await agent_of_user(session, tenant_id=tenant_id, user_id=user_id) is None:
        return
    await billing.check_seat_available(session, tenant_id=tenant_id, in_use=lambda: seats_in_use(session, tenant_id))


async def create_agent(
    session: AsyncSession, *, tenant_id: uuid.UUID, email: str, display_name: str, actor: str, password: str | None = None
) -> tuple[AgentView, str | None]:
    """Create the user (role agent) and the agent; returns the view and the invitation token, if any."""
    display_name = check_display_name(display_name)
    await billing.check_seat_available(session, tenant_id=tenant_id, in_use=lambda: seats_in_use(session, tenant_id))
    created = await identity.create_user(
        session, tenant_id=tenant_id, email=email, display_name=display_name, roles=["agent"], actor=actor, password=password
    )
    agent = Agent(tenant_id=tenant_id, user_id=created.user_id, display_name=display_name, state_changed_at=utcnow())
    session.add(agent)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="agent.created", target=f"agent:{agent.id}", detail={"user_id": str(created.user_id)})
    user = await identity.get_user(session, tenant_id=tenant_id, user_id=created.user_id)
    return _view(agent, user.email, ()), created.invitation_token


async def get_agent_row(session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    agent = await session.scalar(select(Agent).where(Agent.tenant_id == tenant_id, Agent.id == agent_id))
    if agent is None:
        raise not_found("agent")
    return agent


async def agent_of_user(session: AsyncSession, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Agent | None:
    return await session.scalar(select(Agent).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id))


async def get_agent(session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> AgentView:
    agent = await get_agent_row(session, tenant_id=tenant_id, agent_id=agent_id)
    user = await identity.get_user(session, tenant_id=tenant_id, user_id=agent.user_id)
    queues = await _queue_ids(session, tenant_id=tenant_id, agent_ids=[agent.id])
    return _view(agent, user.email, queues[agent.id])


async def list_agents(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[AgentView]:
    # One query for the agents and their users' e-mails (never the tenant's whole user list).
    rows = (
        await session.execute(
            select(Agent, User.email)
            .outerjoin(User, (User.tenant_id == Agent.tenant_id) & (User.id == Agent.user_id))
            .where(Agent.tenant_id == tenant_id)
            .order_by(Agent.display_name, Agent.id)
        )
    ).all()
    queues = await _queue_ids(session, tenant_id=tenant_id, agent_ids=[agent.id for agent, _email in rows])
    return [_view(agent, email, queues[agent.id]) for agent, email in rows]


async def update_agent(
    session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, actor: str, display_name: str | None = None
) -> AgentView:
    agent = await get_agent_row(session, tenant_id=tenant_id, agent_id=agent_id)
    if display_name is not None:
        agent.display_name = check_display_name(display_name)
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="agent.updated", target=f"agent:{agent.id}", detail={"display_name": agent.display_name})
    return await get_agent(session, tenant_id=tenant_id, agent_id=agent_id)
