"""Routes configuring the ACD: skills, agent and queue skills, reason codes, wrap-up
codes and schedules (services in kefu.tenants.acd_config; docs/acd-configuration.md).

Admins manage them with ``acd.queues.*`` (agent skills with ``acd.agents.*``); the
agent desktop reads the active reason and wrap-up codes with ``agent.desktop``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, TenantId
from kefu.platform.identity.principal import requires
from kefu.platform.runtime import Runtime
from kefu.tenants import acd_config
from kefu.tenants.acd_config import REASON_CODES, WRAP_UP_CODES, CodeKind
from kefu.tenants.models import AgentSkill, QueueSkill, Schedule, Skill


class Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


# --- bodies ------------------------------------------------------------------------------


class SkillCreate(Request):
    name: str
    description: str | None = None


class SkillUpdate(Request):
    name: str | None = None
    description: str | None = None


class SkillOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime


class AgentSkillIn(Request):
    skill_id: uuid.UUID
    proficiency: int


class AgentSkillsIn(Request):
    skills: list[AgentSkillIn]


class AgentSkillOut(msgspec.Struct):
    skill_id: uuid.UUID
    proficiency: int


class AgentSkillsOut(msgspec.Struct):
    agent_id: uuid.UUID
    skills: list[AgentSkillOut]


class QueueSkillIn(Request):
    skill_id: uuid.UUID
    min_proficiency: int = 1
    required: bool = True


class QueueSkillsIn(Request):
    skills: list[QueueSkillIn]


class QueueSkillOut(msgspec.Struct):
    skill_id: uuid.UUID
    min_proficiency: int
    required: bool


class QueueSkillsOut(msgspec.Struct):
    queue_id: uuid.UUID
    skills: list[QueueSkillOut]


class CodeCreate(Request):
    code: str
    label: str


class CodeUpdate(Request):
    label: str | None = None
    active: bool | None = None


class CodeOut(msgspec.Struct):
    id: uuid.UUID
    code: str
    label: str
    active: bool
    created_at: datetime


class Holiday(Request):
    date: str
    name: str = ""
    hours: list[list[str]] = msgspec.field(default_factory=list)


class ScheduleCreate(Request):
    name: str
    time_zone: str = "UTC"
    weekly: dict[str, list[list[str]]] = msgspec.field(default_factory=dict)
    holidays: list[Holiday] = msgspec.field(default_factory=list)


class ScheduleUpdate(Request):
    name: str | None = None
    time_zone: str | None = None
    weekly: dict[str, list[list[str]]] | None = None
    holidays: list[Holiday] | None = None


class ScheduleOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    time_zone: str
    weekly: dict[str, Any]
    holidays: list[dict[str, Any]]
    created_at: datetime


class ScheduleStatusOut(msgspec.Struct):
    open: bool
    next_change: datetime | None


def _skill_out(skill: Skill) -> SkillOut:
    return SkillOut(id=skill.id, name=skill.name, description=skill.description, created_at=skill.created_at)


def _agent_skills_out(agent_id: uuid.UUID, rows: list[AgentSkill]) -> AgentSkillsOut:
    return AgentSkillsOut(agent_id=agent_id, skills=[AgentSkillOut(skill_id=r.skill_id, proficiency=r.proficiency) for r in rows])


def _queue_skills_out(queue_id: uuid.UUID, rows: list[QueueSkill]) -> QueueSkillsOut:
    return QueueSkillsOut(
        queue_id=queue_id, skills=[QueueSkillOut(skill_id=r.skill_id, min_proficiency=r.min_proficiency, required=r.required) for r in rows]
    )


def _code_out(row: Any) -> CodeOut:
    return CodeOut(id=row.id, code=row.code, label=row.label, active=row.active, created_at=row.created_at)


def _schedule_out(schedule: Schedule) -> ScheduleOut:
    return ScheduleOut(
        id=schedule.id, name=schedule.name, time_zone=schedule.time_zone, weekly=dict(schedule.weekly or {}),
        holidays=list(schedule.holidays or []), created_at=schedule.created_at,
    )


def _holidays(holidays: list[Holiday] | None) -> list[dict[str, Any]] | None:
    return None if holidays is None else [msgspec.structs.asdict(h) for h in holidays]


# --- skills ------------------------------------------------------------------------------


class SkillsController(Controller):
    path = "/api/v1/skills"
    tags = ["ACD configuration"]

    @post("/", guards=[requires("acd.queues.write")])
    async def create_skill(self, data: JSONBody[SkillCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> SkillOut:
        return _skill_out(await acd_config.create_skill(db, tenant_id=tenant_id, name=data.name, description=data.description, actor=principal.actor))

    @get("/", guards=[requires("acd.queues.read")])
    async def list_skills(self, db: DbSession, tenant_id: TenantId) -> list[SkillOut]:
        return [_skill_out(s) for s in await acd_config.list_skills(db, tenant_id=tenant_id)]

    @get("/{skill_id:uuid}", guards=[requires("acd.queues.read")])
    async def get_skill(self, skill_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> SkillOut:
        return _skill_out(await acd_config.get_skill(db, tenant_id=tenant_id, skill_id=skill_id))

    @patch("/{skill_id:uuid}", guards=[requires("acd.queues.write")])
    async def update_skill(
        self, skill_id: FromPath[uuid.UUID], data: JSONBody[SkillUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> SkillOut:
        skill = await acd_config.update_skill(
            db, tenant_id=tenant_id, skill_id=skill_id, name=data.name, description=data.description, actor=principal.actor
        )
        return _skill_out(skill)

    @delete("/{skill_id:uuid}", guards=[requires("acd.queues.write")], status_code=204)
    async def delete_skill(self, skill_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await acd_config.delete_skill(db, tenant_id=tenant_id, skill_id=skill_id, actor=principal.actor)


class AgentSkillsController(Controller):
    path = "/api/v1/agents/{agent_id:uuid}/skills"
    tags = ["ACD configuration"]

    @get("/", guards=[requires("acd.agents.read")])
    async def get_agent_skills(self, agent_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> AgentSkillsOut:
        return _agent_skills_out(agent_id, await acd_config.agent_skills(db, tenant_id=tenant_id, agent_id=agent_id))

    @put("/", guards=[requires("acd.agents.write")])
    async def set_agent_skills(
        self, agent_id: FromPath[uuid.UUID], data: JSONBody[AgentSkillsIn], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> AgentSkillsOut:
        levels = [acd_config.AgentSkillLevel(skill_id=s.skill_id, proficiency=s.proficiency) for s in data.skills]
        rows = await acd_config.set_agent_skills(db, tenant_id=tenant_id, agent_id=agent_id, skills=levels, actor=principal.actor)
        return _agent_skills_out(agent_id, rows)


class QueueSkillsController(Controller):
    path = "/api/v1/queues/{queue_id:uuid}/skills"
    tags = ["ACD configuration"]

    @get("/", guards=[requires("acd.queues.read")])
    async def get_queue_skills(self, queue_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> QueueSkillsOut:
        return _queue_skills_out(queue_id, await acd_config.queue_skills(db, tenant_id=tenant_id, queue_id=queue_id))

    @put("/", guards=[requires("acd.queues.write")])
    async def set_queue_skills(
        self, queue_id: FromPath[uuid.UUID], data: JSONBody[QueueSkillsIn], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> QueueSkillsOut:
        needs = [acd_config.QueueSkillNeed(skill_id=s.skill_id, min_proficiency=s.min_proficiency, required=s.required) for s in data.skills]
        rows = await acd_config.set_queue_skills(db, tenant_id=tenant_id, queue_id=queue_id, skills=needs, actor=principal.actor)
        return _queue_skills_out(queue_id, rows)


# --- reason codes and wrap-up codes ------------------------------------------------------------
# Alike but for their table (CodeKind); each has its own id name in the path.


async def _create_code(kind: CodeKind, data: CodeCreate, db: Any, tenant_id: uuid.UUID, actor: str) -> CodeOut:
    return _code_out(await acd_config.create_code(db, kind, tenant_id=tenant_id, code=data.code, label=data.label, actor=actor))


async def _update_code(kind: CodeKind, code_id: uuid.UUID, data: CodeUpdate, db: Any, tenant_id: uuid.UUID, actor: str) -> CodeOut:
    return _code_out(await acd_config.update_code(db, kind, tenant_id=tenant_id, code_id=code_id, label=data.label, active=data.active, actor=actor))


class ReasonCodesController(Controller):
    """Not-ready reasons; DELETE deactivates (agents' states name them)."""

    path = "/api/v1/reason-codes"
    tags = ["ACD configuration"]

    @post("/", guards=[requires("acd.queues.write")])
    async def create_reason_code(self, data: JSONBody[CodeCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> CodeOut:
        return await _create_code(REASON_CODES, data, db, tenant_id, principal.actor)

    @get("/", guards=[requires("acd.queues.read")])
    async def list_reason_codes(self, db: DbSession, tenant_id: TenantId) -> list[CodeOut]:
        return [_code_out(r) for r in await acd_config.list_codes(db, REASON_CODES, tenant_id=tenant_id)]

    @get("/{reason_code_id:uuid}", guards=[requires("acd.queues.read")])
    async def get_reason_code(self, reason_code_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> CodeOut:
        return _code_out(await acd_config.get_code(db, REASON_CODES, tenant_id=tenant_id, code_id=reason_code_id))

    @patch("/{reason_code_id:uuid}", guards=[requires("acd.queues.write")])
    async def update_reason_code(
        self, reason_code_id: FromPath[uuid.UUID], data: JSONBody[CodeUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> CodeOut:
        return await _update_code(REASON_CODES, reason_code_id, data, db, tenant_id, principal.actor)

    @delete("/{reason_code_id:uuid}", guards=[requires("acd.queues.write")], status_code=204)
    async def deactivate_reason_code(self, reason_code_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await acd_config.deactivate_code(db, REASON_CODES, tenant_id=tenant_id, code_id=reason_code_id, actor=principal.actor)


class WrapUpCodesController(Controller):
    """Dispositions given in after-call work; DELETE deactivates (calls name them)."""

    path = "/api/v1/wrap-up-codes"
    tags = ["ACD configuration"]

    @post("/", guards=[requires("acd.queues.write")])
    async def create_wrap_up_code(self, data: JSONBody[CodeCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> CodeOut:
        return await _create_code(WRAP_UP_CODES, data, db, tenant_id, principal.actor)

    @get("/", guards=[requires("acd.queues.read")])
    async def list_wrap_up_codes(self, db: DbSession, tenant_id: TenantId) -> list[CodeOut]:
        return [_code_out(r) for r in await acd_config.list_codes(db, WRAP_UP_CODES, tenant_id=tenant_id)]

    @get("/{wrap_up_code_id:uuid}", guards=[requires("acd.queues.read")])
    async def get_wrap_up_code(self, wrap_up_code_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> CodeOut:
        return _code_out(await acd_config.get_code(db, WRAP_UP_CODES, tenant_id=tenant_id, code_id=wrap_up_code_id))

    @patch("/{wrap_up_code_id:uuid}", guards=[requires("acd.queues.write")])
    async def update_wrap_up_code(
        self, wrap_up_code_id: FromPath[uuid.UUID], data: JSONBody[CodeUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> CodeOut:
        return await _update_code(WRAP_UP_CODES, wrap_up_code_id, data, db, tenant_id, principal.actor)

    @delete("/{wrap_up_code_id:uuid}", guards=[requires("acd.queues.write")], status_code=204)
    async def deactivate_wrap_up_code(self, wrap_up_code_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await acd_config.deactivate_code(db, WRAP_UP_CODES, tenant_id=tenant_id, code_id=wrap_up_code_id, actor=principal.actor)


class AgentCodesController(Controller):
    """What the agent desktop offers: the active reason codes and wrap-up codes."""

    path = "/api/v1/agent"
    tags = ["agent desktop"]
    guards = [requires("agent.desktop")]

    @get("/reason-codes")
    async def active_reason_codes(self, db: DbSession, tenant_id: TenantId) -> list[CodeOut]:
        return [_code_out(r) for r in await acd_config.list_codes(db, REASON_CODES, tenant_id=tenant_id, active_only=True)]

    @get("/wrap-up-codes")
    async def active_wrap_up_codes(self, db: DbSession, tenant_id: TenantId) -> list[CodeOut]:
        return [_code_out(r) for r in await acd_config.list_codes(db, WRAP_UP_CODES, tenant_id=tenant_id, active_only=True)]


# --- schedules -----------------------------------------------------------------------------------


class SchedulesController(Controller):
    path = "/api/v1/schedules"
    tags = ["ACD configuration"]

    @post("/", guards=[requires("acd.queues.write")])
    async def create_schedule(self, data: JSONBody[ScheduleCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> ScheduleOut:
        schedule = await acd_config.create_schedule(
            db, tenant_id=tenant_id, name=data.name, time_zone=data.time_zone, weekly=data.weekly, holidays=_holidays(data.holidays) or [],
            actor=principal.actor,
        )
        return _schedule_out(schedule)

    @get("/", guards=[requires("acd.queues.read")])
    async def list_schedules(self, db: DbSession, tenant_id: TenantId) -> list[ScheduleOut]:
        return [_schedule_out(s) for s in await acd_config.list_schedules(db, tenant_id=tenant_id)]

    @get("/{schedule_id:uuid}", guards=[requires("acd.queues.read")])
    async def get_schedule(self, schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> ScheduleOut:
        return _schedule_out(await acd_config.get_schedule(db, tenant_id=tenant_id, schedule_id=schedule_id))

    @patch("/{schedule_id:uuid}", guards=[requires("acd.queues.write")])
    async def update_schedule(
        self, schedule_id: FromPath[uuid.UUID], data: JSONBody[ScheduleUpdate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal
    ) -> ScheduleOut:
        schedule = await acd_config.update_schedule(
            db, tenant_id=tenant_id, schedule_id=schedule_id, name=data.name, time_zone=data.time_zone, weekly=data.weekly,
            holidays=_holidays(data.holidays), actor=principal.actor,
        )
        return _schedule_out(schedule)

    @delete("/{schedule_id:uuid}", guards=[requires("acd.queues.write")], status_code=204)
    async def delete_schedule(self, schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await acd_config.delete_schedule(db, tenant_id=tenant_id, schedule_id=schedule_id, actor=principal.actor)

    @get("/{schedule_id:uuid}/status", guards=[requires("acd.queues.read")])
    async def schedule_status(self, schedule_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> ScheduleStatusOut:
        """Open or closed now (the real clock), and when that next changes (null: not within 14 days)."""
        schedule = await acd_config.get_schedule(db, tenant_id=tenant_id, schedule_id=schedule_id)
        status = acd_config.schedule_status(schedule, utcnow())
        return ScheduleStatusOut(open=status.open, next_change=status.next_change)


def install(runtime: Runtime) -> list[Any]:
    return [
        SkillsController, AgentSkillsController, QueueSkillsController, ReasonCodesController, WrapUpCodesController,
        AgentCodesController, SchedulesController,
    ]
