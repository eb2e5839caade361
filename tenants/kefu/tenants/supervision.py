"""Supervision of the floor: teams, the supervisors assigned to teams and queues, and
the live console (docs/supervision.md).

A tenant admin sees and acts on the whole tenant.  Any other supervisor (a user
with ``acd.agents.supervise``) sees only the agents of the teams assigned to them
and the queues assigned to them, and may monitor, whisper, barge, take over and
force the state of only those: an agent of one of their teams, or a call of one
of their queues.  A supervisor without assignments sees an empty console.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Membership, Tenant, User
from kefu.platform.problems import Problem, not_found
from kefu.tenants import queues as queues_service
from kefu.tenants.acd_config import add_unique
from kefu.tenants.agents import ui_state
from kefu.tenants.models import Agent, Call, Queue, QueueMember, QueueSupervisor, Team, TeamSupervisor
from kefu.tenants.reports.live import today_by_queue

MAX_NAME = 200
MAX_IDS = 1000  # agents or supervisors named in one request
SUPERVISOR_ROLES = ("supervisor", "tenant_admin")
WAITING = ("queued", "ringing")


# --- who sees what -------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What one supervisor sees: everything (a tenant admin) or their teams' agents and their queues."""

    everything: bool
    team_ids: frozenset[uuid.UUID] = frozenset()
    queue_ids: frozenset[uuid.UUID] = frozenset()
    agent_ids: frozenset[uuid.UUID] = frozenset()

    def sees_agent(self, agent_id: uuid.UUID | None) -> bool:
        return self.everything or (agent_id is not None and agent_id in self.agent_ids)

    def sees_queue(self, queue_id: uuid.UUID | None) -> bool:
        return self.everything or (queue_id is not None and queue_id in self.queue_ids)

    def sees_call(self, *, agent_id: uuid.UUID | None, queue_id: uuid.UUID | None) -> bool:
        return self.sees_agent(agent_id) or self.sees_queue(queue_id)


async def scope_of(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal) -> Scope:
    if "tenant_admin" in principal.roles:
        return Scope(everything=True)
    user_id = principal.user_id
    team_ids = frozenset(await session.scalars(
        select(TeamSupervisor.team_id).where(TeamSupervisor.tenant_id == tenant_id, TeamSupervisor.user_id == user_id)
    ))
    queue_ids = frozenset(await session.scalars(
        select(QueueSupervisor.queue_id).where(QueueSupervisor.tenant_id == tenant_id, QueueSupervisor.user_id == user_id)
    ))
    agent_ids: frozenset[uuid.UUID] = frozenset()
    if team_ids:
        agent_ids = frozenset(await session.scalars(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.team_id.in_(team_ids))))
    return Scope(everything=False, team_ids=team_ids, queue_ids=queue_ids, agent_ids=agent_ids)


def outside_scope(what: str) -> Problem:
    return Problem(403, "outside_supervision_scope", f"this {what} is not in a team or queue assigned to you")


async def check_agent_in_scope(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, agent_id: uuid.UUID) -> None:
    """404 for an agent that does not exist (or is another tenant's); 403 for one outside the scope."""
    exists = await session.scalar(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id == agent_id))
    if exists is None:
        raise not_found("agent")
    if not (await scope_of(session, tenant_id=tenant_id, principal=principal)).sees_agent(agent_id):
        raise outside_scope("agent")


async def check_call_in_scope(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, call_id: uuid.UUID) -> None:
    """A call a supervisor may join: its agent is in one of their teams or its queue is theirs."""
    row = (await session.execute(select(Call.agent_id, Call.queue_id).where(Call.tenant_id == tenant_id, Call.id == call_id))).first()
    if row is None:
        raise not_found("call")
    if not (await scope_of(session, tenant_id=tenant_id, principal=principal)).sees_call(agent_id=row.agent_id, queue_id=row.queue_id):
        raise outside_scope("call")


# --- teams ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamView:
    id: uuid.UUID
    name: str
    supervisor_ids: list[uuid.UUID]
    agent_ids: list[uuid.UUID]
    created_at: datetime


def _name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME:
        raise Problem(400, "invalid_team_name", f"the team name must have 1 to {MAX_NAME} characters")
    return value


def _ids(values: list[uuid.UUID], what: str) -> list[uuid.UUID]:
    if len(values) > MAX_IDS:
        raise Problem(400, "too_many_ids", f"at most {MAX_IDS} {what} at once")
    return list(dict.fromkeys(values))


async def _check_agents(session: AsyncSession, *, tenant_id: uuid.UUID, agent_ids: list[uuid.UUID]) -> None:
    if not agent_ids:
        return
    found = set(await session.scalars(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id.in_(agent_ids))))
    if len(found) != len(agent_ids):
        raise not_found("agent")


async def check_supervisors(session: AsyncSession, *, tenant_id: uuid.UUID, user_ids: list[uuid.UUID]) -> None:
    """Each user exists in the tenant and holds the supervisor (or tenant admin) role."""
    if not user_ids:
        return
    found = set(await session.scalars(select(User.id).where(User.tenant_id == tenant_id, User.id.in_(user_ids))))
    if len(found) != len(user_ids):
        raise not_found("user")
    supervising = set(await session.scalars(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant_id, Membership.user_id.in_(user_ids), Membership.role.in_(SUPERVISOR_ROLES)
        )
    ))
    missing = [str(u) for u in user_ids if u not in supervising]
    if missing:
        raise Problem(400, "not_a_supervisor", "only users with the supervisor or tenant admin role can supervise", user_ids=missing)


async def _team_row(session: AsyncSession, *, tenant_id: uuid.UUID, team_id: uuid.UUID) -> Team:
    team = await session.scalar(select(Team).where(Team.tenant_id == tenant_id, Team.id == team_id))
    if team is None:
        raise not_found("team")
    return team


async def _views(session: AsyncSession, *, tenant_id: uuid.UUID, teams: list[Team]) -> list[TeamView]:
    ids = [t.id for t in teams]
    supervisors: dict[uuid.UUID, list[uuid.UUID]] = {i: [] for i in ids}
    agents: dict[uuid.UUID, list[uuid.UUID]] = {i: [] for i in ids}
    if ids:
        for team_id, user_id in await session.execute(
            select(TeamSupervisor.team_id, TeamSupervisor.user_id)
            .where(TeamSupervisor.tenant_id == tenant_id, TeamSupervisor.team_id.in_(ids)).order_by(TeamSupervisor.user_id)
        ):
            supervisors[team_id].append(user_id)
        for team_id, agent_id in await session.execute(
            select(Agent.team_id, Agent.id).where(Agent.tenant_id == tenant_id, Agent.team_id.in_(ids)).order_by(Agent.display_name, Agent.id)
        ):
            agents[team_id].append(agent_id)
    return [TeamView(t.id, t.name, supervisors[t.id], agents[t.id], t.created_at) for t in teams]


async def _set_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, team: Team, supervisor_ids: list[uuid.UUID] | None, agent_ids: list[uuid.UUID] | None,
) -> None:
    if supervisor_ids is not None:
        await session.execute(delete(TeamSupervisor).where(TeamSupervisor.tenant_id == tenant_id, TeamSupervisor.team_id == team.id))
        session.add_all(TeamSupervisor(tenant_id=tenant_id, team_id=team.id, user_id=u) for u in supervisor_ids)
    if agent_ids is not None:
        # An agent is in one team at most: the listed agents move here, the others leave.
        await session.execute(
            update(Agent).where(Agent.tenant_id == tenant_id, Agent.team_id == team.id, Agent.id.not_in(agent_ids)).values(team_id=None)
        )
        if agent_ids:
            await session.execute(update(Agent).where(Agent.tenant_id == tenant_id, Agent.id.in_(agent_ids)).values(team_id=team.id))
    await session.flush()


async def create_team(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, supervisor_ids: list[uuid.UUID], agent_ids: list[uuid.UUID], actor: str,
) -> TeamView:
    supervisor_ids, agent_ids = _ids(supervisor_ids, "supervisors"), _ids(agent_ids, "agents")
    team = Team(tenant_id=tenant_id, name=_name(name))
    await check_supervisors(session, tenant_id=tenant_id, user_ids=supervisor_ids)
    await _check_agents(session, tenant_id=tenant_id, agent_ids=agent_ids)
    await add_unique(session, team, Problem(409, "team_name_taken", "a team with this name already exists"))
    await _set_members(session, tenant_id=tenant_id, team=team, supervisor_ids=supervisor_ids, agent_ids=agent_ids)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="team.created", target=f"team:{team.id}",
                       detail={"name": team.name, "supervisor_ids": [str(u) for u in supervisor_ids], "agent_ids": [str(a) for a in agent_ids]})
    return (await _views(session, tenant_id=tenant_id, teams=[team]))[0]


async def update_team(
    session: AsyncSession, *, tenant_id: uuid.UUID, team_id: uuid.UUID, actor: str, name: str | None = None,
    supervisor_ids: list[uuid.UUID] | None = None, agent_ids: list[uuid.UUID] | None = None,
) -> TeamView:
    team = await _team_row(session, tenant_id=tenant_id, team_id=team_id)
    detail: dict[str, Any] = {}
    if supervisor_ids is not None:
        supervisor_ids = _ids(supervisor_ids, "supervisors")
        await check_supervisors(session, tenant_id=tenant_id, user_ids=supervisor_ids)
        detail["supervisor_ids"] = [str(u) for u in supervisor_ids]
    if agent_ids is not None:
        agent_ids = _ids(agent_ids, "agents")
        await _check_agents(session, tenant_id=tenant_id, agent_ids=agent_ids)
        detail["agent_ids"] = [str(a) for a in agent_ids]
    new_name = None if name is None else _name(name)
    if new_name is not None and new_name != team.name:
        taken = await session.scalar(select(Team.id).where(Team.tenant_id == tenant_id, Team.name == new_name, Team.id != team.id))
        if taken is not None:
            raise Problem(409, "team_name_taken", "a team with this name already exists")
        team.name = detail["name"] = new_name
    await _set_members(session, tenant_id=tenant_id, team=team, supervisor_ids=supervisor_ids, agent_ids=agent_ids)
    if detail:
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="team.updated", target=f"team:{team.id}", detail=detail)
    return (await _views(session, tenant_id=tenant_id, teams=[team]))[0]


async def delete_team(session: AsyncSession, *, tenant_id: uuid.UUID, team_id: uuid.UUID, actor: str) -> None:
    team = await _team_row(session, tenant_id=tenant_id, team_id=team_id)
    await session.execute(update(Agent).where(Agent.tenant_id == tenant_id, Agent.team_id == team.id).values(team_id=None))
    await session.delete(team)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="team.deleted", target=f"team:{team.id}", detail={"name": team.name})


async def list_teams(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[TeamView]:
    teams = list(await session.scalars(select(Team).where(Team.tenant_id == tenant_id).order_by(Team.name, Team.id)))
    return await _views(session, tenant_id=tenant_id, teams=teams)


async def get_team(session: AsyncSession, *, tenant_id: uuid.UUID, team_id: uuid.UUID) -> TeamView:
    return (await _views(session, tenant_id=tenant_id, teams=[await _team_row(session, tenant_id=tenant_id, team_id=team_id)]))[0]


# --- queue supervisors ----------------------------------------------------------------------


async def queue_supervisors(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> list[uuid.UUID]:
    await queues_service.get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    return list(await session.scalars(
        select(QueueSupervisor.user_id).where(QueueSupervisor.tenant_id == tenant_id, QueueSupervisor.queue_id == queue_id)
        .order_by(QueueSupervisor.user_id)
    ))


async def set_queue_supervisors(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, user_ids: list[uuid.UUID], actor: str,
) -> list[uuid.UUID]:
    await queues_service.get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    user_ids = _ids(user_ids, "supervisors")
    await check_supervisors(session, tenant_id=tenant_id, user_ids=user_ids)
    await session.execute(delete(QueueSupervisor).where(QueueSupervisor.tenant_id == tenant_id, QueueSupervisor.queue_id == queue_id))
    session.add_all(QueueSupervisor(tenant_id=tenant_id, queue_id=queue_id, user_id=u) for u in user_ids)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="queue.supervisors_set", target=f"queue:{queue_id}",
                       detail={"user_ids": [str(u) for u in user_ids]})
    return sorted(user_ids)


# --- the console ------------------------------------------------------------------------------


def _seconds(since: datetime | None, now: datetime) -> int | None:
    return None if since is None else max(0, int((now - since).total_seconds()))


async def _day_start(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime) -> datetime:
    """The start of the tenant's current day (its time zone), as a UTC moment."""
    zone_name = await session.scalar(select(Tenant.time_zone).where(Tenant.id == tenant_id)) or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone).astimezone(now.tzinfo)


async def console(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal, now: datetime) -> dict[str, Any]:
    """The live console of one supervisor: their agents (state, time in state, current
    call), their queues (waiting, longest wait, today's service level, agents by state)
    and the connected calls they may join."""
    scope = await scope_of(session, tenant_id=tenant_id, principal=principal)
    teams = {t.id: t.name for t in await session.scalars(select(Team).where(Team.tenant_id == tenant_id))}
    agent_query = select(Agent).where(Agent.tenant_id == tenant_id).order_by(Agent.display_name, Agent.id)
    queue_query = select(Queue).where(Queue.tenant_id == tenant_id).order_by(Queue.name, Queue.id)
    if not scope.everything:
        agent_query = agent_query.where(Agent.id.in_(scope.agent_ids))
        queue_query = queue_query.where(Queue.id.in_(scope.queue_ids))
    agents = list(await session.scalars(agent_query))
    queues = list(await session.scalars(queue_query))

    live_calls = {
        call.id: call for call in await session.scalars(
            select(Call).where(Call.tenant_id == tenant_id, Call.status.in_(("queued", "ringing", "connected")))
        )
    }
    agents_out = []
    for agent in agents:
        call = live_calls.get(agent.current_call_id) if agent.current_call_id else None
        agents_out.append({
            "id": str(agent.id), "display_name": agent.display_name,
            "team_id": str(agent.team_id) if agent.team_id else None, "team": teams.get(agent.team_id) if agent.team_id else None,
            "state": ui_state(agent), "status": agent.status, "system_state": agent.system_state, "reason": agent.not_ready_reason,
            "state_since": agent.state_changed_at.isoformat(), "time_in_state_s": _seconds(agent.state_changed_at, now),
            "current_call": None if call is None else {
                "id": str(call.id), "caller_name": call.caller_name, "queue_id": str(call.queue_id) if call.queue_id else None,
                "status": call.status, "answered_at": call.answered_at.isoformat() if call.answered_at else None,
            },
        })

    queue_ids = [q.id for q in queues]
    members: dict[uuid.UUID, list[uuid.UUID]] = {q: [] for q in queue_ids}
    member_state: dict[uuid.UUID, str] = {}
    if queue_ids:
        for queue_id, agent_id in await session.execute(
            select(QueueMember.queue_id, QueueMember.agent_id).where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id.in_(queue_ids))
        ):
            members[queue_id].append(agent_id)
        member_ids = {a for ids in members.values() for a in ids}
        if member_ids:
            for row in await session.scalars(select(Agent).where(Agent.tenant_id == tenant_id, Agent.id.in_(member_ids))):
                member_state[row.id] = ui_state(row)
    day_start = await _day_start(session, tenant_id=tenant_id, now=now)
    # Today's service level as the reports define it (kefu.tenants.reports.live, docs/reports.md).
    today = await today_by_queue(session, tenant_id=tenant_id, queue_ids=queue_ids, now=now)
    queues_out = []
    for queue in queues:
        waiting = [c for c in live_calls.values() if c.queue_id == queue.id and c.status in WAITING]
        entered = [c.queue_entered_at or c.queued_at for c in waiting if (c.queue_entered_at or c.queued_at) is not None]
        figures = today[queue.id]
        states = [member_state.get(a, "offline") for a in members[queue.id]]
        queues_out.append({
            "id": str(queue.id), "name": queue.name, "waiting": len(waiting),
            "callbacks": sum(1 for c in waiting if c.callback_requested_at is not None),
            "longest_wait_s": _seconds(min(entered), now) if entered else 0,
            "oldest_since": min(entered).isoformat() if entered else None,
            "service_level": {
                "target_s": figures.target_s, "answered": figures.answered, "answered_within": figures.answered_within,
                "abandoned": figures.abandoned, "short_abandoned": figures.short_abandoned, "percent": figures.service_level_percent,
            },
            "agents": {state: states.count(state) for state in ("available", "not_ready", "ringing", "on_call", "wrap_up", "offline")},
        })

    joinable = [
        c for c in sorted(live_calls.values(), key=lambda c: c.started_at, reverse=True)
        if c.status == "connected" and scope.sees_call(agent_id=c.agent_id, queue_id=c.queue_id)
    ]
    call_agents = {c.agent_id for c in joinable if c.agent_id is not None}
    agent_names = dict((await session.execute(
        select(Agent.id, Agent.display_name).where(Agent.tenant_id == tenant_id, Agent.id.in_(call_agents))
    )).tuples().all()) if call_agents else {}
    calls_out = [
        {"id": str(c.id), "caller_name": c.caller_name, "agent_id": str(c.agent_id) if c.agent_id else None,
         "agent_name": agent_names.get(c.agent_id) if c.agent_id else None,
         "queue_id": str(c.queue_id) if c.queue_id else None, "started_at": c.started_at.isoformat(),
         "answered_at": c.answered_at.isoformat() if c.answered_at else None}
        for c in joinable
    ]
    return {
        "now": now.isoformat(),
        "scope": {"all": scope.everything, "team_ids": sorted(map(str, scope.team_ids)), "queue_ids": sorted(map(str, scope.queue_ids))},
        "teams": [{"id": str(i), "name": n} for i, n in sorted(teams.items(), key=lambda kv: kv[1]) if scope.everything or i in scope.team_ids],
        "agents": agents_out, "queues": queues_out, "calls": calls_out,
        "day_start": day_start.isoformat(),
    }

