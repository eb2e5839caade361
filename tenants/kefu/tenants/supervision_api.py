"""HTTP API of supervision (docs/supervision.md).

* ``/api/v1/teams``: teams of agents and the supervisors assigned to them
  (``acd.agents.read`` to read, ``acd.agents.write`` to change).
* ``/api/v1/queues/{id}/supervisors``: the supervisors assigned to a queue.
* ``GET /api/v1/supervision/console``: one supervisor's live view (their
  teams' agents, their queues, the calls they may join); the console page
  re-reads it whenever ``/ws/events`` reports an agent or call state change.
* ``PUT /api/v1/supervision/agents/{id}/status``: force ready (``available``),
  force not-ready (``not_ready``, with an optional reason code) and force
  logout (``offline``), shown on the agent's desktop and written to the audit log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from kefu.platform.deps import ActiveTenantId, CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.identity.principal import Principal, requires
from kefu.platform.models import User
from kefu.platform.runtime import Runtime
from kefu.tenants import supervision
from kefu.tenants.acd import Forced
from kefu.tenants.agents import ui_state
from kefu.tenants.models import Agent
from kefu.tenants.schemas import Request
from kefu.tenants.services import contact_center
from sqlalchemy import select


class TeamCreate(Request):
    name: str
    supervisor_ids: list[uuid.UUID] = []
    agent_ids: list[uuid.UUID] = []


class TeamUpdate(Request):
    name: str | None = None
    supervisor_ids: list[uuid.UUID] | None = None
    agent_ids: list[uuid.UUID] | None = None


class TeamOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    supervisor_ids: list[uuid.UUID]
    agent_ids: list[uuid.UUID]
    created_at: datetime


class QueueSupervisorsUpdate(Request):
    user_ids: list[uuid.UUID]


class QueueSupervisorsOut(msgspec.Struct):
    queue_id: uuid.UUID
    user_ids: list[uuid.UUID]


class ForcedStatus(Request):
    status: Literal["available", "not_ready", "offline"]
    reason: str | None = None


class ForcedOut(msgspec.Struct):
    agent_id: uuid.UUID
    display_name: str
    state: str
    status: str
    system_state: str
    not_ready_reason: str | None


def _team_out(view: supervision.TeamView) -> TeamOut:
    return TeamOut(id=view.id, name=view.name, supervisor_ids=view.supervisor_ids, agent_ids=view.agent_ids, created_at=view.created_at)


class TeamsController(Controller):
    path = "/api/v1/teams"
    tags = ["supervision"]

    @post("/", guards=[requires("acd.agents.write")])
    async def create_team(self, data: JSONBody[TeamCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> TeamOut:
        return _team_out(await supervision.create_team(
            db, tenant_id=tenant_id, name=data.name, supervisor_ids=data.supervisor_ids, agent_ids=data.agent_ids, actor=principal.actor,
        ))

    @get("/", guards=[requires("acd.agents.read")])
    async def list_teams(self, db: DbSession, tenant_id: TenantId) -> list[TeamOut]:
        return [_team_out(v) for v in await supervision.list_teams(db, tenant_id=tenant_id)]

    @get("/{team_id:uuid}", guards=[requires("acd.agents.read")])
    async def get_team(self, team_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> TeamOut:
        return _team_out(await supervision.get_team(db, tenant_id=tenant_id, team_id=team_id))

    @patch("/{team_id:uuid}", guards=[requires("acd.agents.write")])
    async def update_team(self, team_id: FromPath[uuid.UUID], data: JSONBody[TeamUpdate], db: DbSession, tenant_id: TenantId,
                          principal: CurrentPrincipal) -> TeamOut:
        return _team_out(await supervision.update_team(
            db, tenant_id=tenant_id, team_id=team_id, actor=principal.actor, name=data.name,
            supervisor_ids=data.supervisor_ids, agent_ids=data.agent_ids,
        ))

    @delete("/{team_id:uuid}", guards=[requires("acd.agents.write")], status_code=204)
    async def delete_team(self, team_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await supervision.delete_team(db, tenant_id=tenant_id, team_id=team_id, actor=principal.actor)


class QueueSupervisorsController(Controller):
    path = "/api/v1/queues/{queue_id:uuid}/supervisors"
    tags = ["supervision"]

    @get("/", guards=[requires("acd.queues.read")])
    async def list_supervisors(self, queue_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> QueueSupervisorsOut:
        return QueueSupervisorsOut(queue_id=queue_id, user_ids=await supervision.queue_supervisors(db, tenant_id=tenant_id, queue_id=queue_id))

    @put("/", guards=[requires("acd.queues.write")])
    async def set_supervisors(self, queue_id: FromPath[uuid.UUID], data: JSONBody[QueueSupervisorsUpdate], db: DbSession, tenant_id: TenantId,
                              principal: CurrentPrincipal) -> QueueSupervisorsOut:
        user_ids = await supervision.set_queue_supervisors(db, tenant_id=tenant_id, queue_id=queue_id, user_ids=data.user_ids, actor=principal.actor)
        return QueueSupervisorsOut(queue_id=queue_id, user_ids=user_ids)


async def check_call_in_scope(runtime: Runtime, *, tenant_id: uuid.UUID, principal: Principal, call_id: uuid.UUID) -> None:
    """Before a supervisor joins (or pauses the recording of) a call: it is one of theirs."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        await supervision.check_call_in_scope(session, tenant_id=tenant_id, principal=principal, call_id=call_id)


class ConsoleController(Controller):
    path = "/api/v1/supervision"
    tags = ["supervision"]
    guards = [requires("acd.agents.supervise")]

    @get("/console")
    async def console(self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal, runtime: RuntimeDep) -> dict[str, Any]:
        return await supervision.console(db, tenant_id=tenant_id, principal=principal, now=contact_center(runtime).acd.clock())

    @put("/agents/{agent_id:uuid}/status")
    async def force_status(self, agent_id: FromPath[uuid.UUID], data: JSONBody[ForcedStatus], active_tenant_id: ActiveTenantId,
                           principal: CurrentPrincipal, runtime: RuntimeDep) -> ForcedOut:
        """强制示闲 / 强制示忙 / 强制签出: the agent's desktop shows who did it; the audit log keeps it."""
        async with runtime.db.tenant_session(tenant_id=active_tenant_id) as session:
            await supervision.check_agent_in_scope(session, tenant_id=active_tenant_id, principal=principal, agent_id=agent_id)
            name = await session.scalar(select(User.display_name).where(User.tenant_id == active_tenant_id, User.id == principal.user_id))
        forced = Forced(agent_id=agent_id, actor=principal.actor, name=name or "")
        acd = contact_center(runtime).acd
        agent: Agent
        if data.status == "offline":
            agent = await acd.log_out(tenant_id=active_tenant_id, forced=forced)
        else:
            agent = await acd.set_status(tenant_id=active_tenant_id, status=data.status, reason=data.reason, forced=forced)
        return ForcedOut(agent_id=agent.id, display_name=agent.display_name, state=ui_state(agent), status=agent.status,
                         system_state=agent.system_state, not_ready_reason=agent.not_ready_reason)


def install(runtime: Runtime) -> list[Any]:
    return [TeamsController, QueueSupervisorsController, ConsoleController]
