"""The agent desktop's directory: where an agent may transfer or consult.

``GET /api/v1/agent/directory`` answers the tenant's queues (id, name) and its
other agents (id, display name, desktop state code) to a user with the agent
desktop, who may not read the full agent and queue lists (``acd.agents.read``,
``acd.queues.read``: no e-mails, members or user ids here).  Read-only; the
page shows the states in words.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, get

from kefu.platform.deps import CurrentPrincipal, DbSession, TenantId
from kefu.platform.identity.principal import requires
from kefu.platform.runtime import Runtime
from kefu.tenants import agents as agents_service
from kefu.tenants import queues as queues_service


class DirectoryQueueOut(msgspec.Struct):
    id: uuid.UUID
    name: str


class DirectoryAgentOut(msgspec.Struct):
    id: uuid.UUID
    display_name: str
    state: str  # offline | available | not_ready | ringing | on_call


class DirectoryOut(msgspec.Struct):
    queues: list[DirectoryQueueOut]
    agents: list[DirectoryAgentOut]


class AgentDirectoryController(Controller):
    path = "/api/v1/agent/directory"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @get("/")
    async def directory(self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> DirectoryOut:
        me = await agents_service.agent_of_user(db, tenant_id=tenant_id, user_id=principal.user_id)
        queues = await queues_service.list_queues(db, tenant_id=tenant_id)
        agents = await agents_service.list_agents(db, tenant_id=tenant_id)
        return DirectoryOut(
            queues=[DirectoryQueueOut(id=q.id, name=q.name) for q in queues],
            agents=[DirectoryAgentOut(id=a.id, display_name=a.display_name, state=a.state) for a in agents if me is None or a.id != me.id],
        )


def install(runtime: Runtime) -> list[Any]:
    return [AgentDirectoryController]
