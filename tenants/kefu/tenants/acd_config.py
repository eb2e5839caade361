"""What the ACD is configured with, apart from the queues themselves: skills, the
skills of agents and queues, not-ready reason codes, wrap-up codes and schedules.

Every function takes ``tenant_id`` keyword-only; a foreign id answers exactly like
a missing one (404 ``not_found``).  Bad input raises a 400 with a stable code before
anything is written, and every change writes its audit entry in the same
transaction.  docs/acd-configuration.md lists the settings, ranges and codes.

Deleting is conservative: a skill that agents or queues use, or a schedule a
queue uses, is refused (409 ``skill_in_use``, ``schedule_in_use``) instead of
silently changing how calls are routed; reason and wrap-up codes are only ever
deactivated, since agents' states and calls' dispositions name them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants import agents as agents_service
from kefu.tenants import queues as queues_service
from kefu.tenants import schedules
from kefu.tenants.models import AgentSkill, Queue, QueueSkill, ReasonCode, Schedule, Skill, WrapUpCode

PROFICIENCY_MIN, PROFICIENCY_MAX = 1, 10
MAX_SKILLS_PER_SET = 100
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Not-ready reasons Kefu itself sets (kefu.tenants.acd); a tenant cannot define them.
SYSTEM_REASON_CODES = frozenset({"logged_in", "no_answer", "not_ready", "lease_expired", "billing_suspended", "supervisor"})


async def add_unique(session: AsyncSession, row: Any, conflict: Problem) -> None:
    """Insert ``row``; a unique-constraint race (the check before it passed) answers ``conflict``."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise conflict from None


# --- skills ----------------------------------------------------------------------------


def _skill_name(name: str) -> str:
    return check_text(name, code="invalid_name", what="the name", max_length=100)


def _description(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value.strip()) > 500:
        raise Problem(400, "invalid_description", "the description may have at most 500 characters")
    return value.strip()


def _skill_name_taken() -> Problem:
    return Problem(409, "skill_name_taken", "a skill with this name already exists")


async def get_skill(session: AsyncSession, *, tenant_id: uuid.UUID, skill_id: uuid.UUID) -> Skill:
    skill = await session.scalar(select(Skill).where(Skill.tenant_id == tenant_id, Skill.id == skill_id))
    if skill is None:
        raise not_found("skill")
    return skill


async def list_skills(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Skill]:
    return list(await session.scalars(select(Skill).where(Skill.tenant_id == tenant_id).order_by(Skill.name, Skill.id)))


async def _skill_name_in_use(session: AsyncSession, *, tenant_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None) -> bool:
    query = select(Skill.id).where(Skill.tenant_id == tenant_id, Skill.name == name)
    if except_id is not None:
        query = query.where(Skill.id != except_id)
    return await session.scalar(query) is not None


async def create_skill(session: AsyncSession, *, tenant_id: uuid.UUID, name: str, actor: str, description: str | None = None) -> Skill:
    name, description = _skill_name(name), _description(description)
    if await _skill_name_in_use(session, tenant_id=tenant_id, name=name):
        raise _skill_name_taken()
    skill = Skill(tenant_id=tenant_id, name=name, description=description, created_at=utcnow())
    await add_unique(session, skill, _skill_name_taken())
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="skill.created", target=f"skill:{skill.id}", detail={"name": name})
    return skill


async def update_skill(
    session: AsyncSession, *, tenant_id: uuid.UUID, skill_id: uuid.UUID, actor: str, name: str | None = None, description: str | None = None
) -> Skill:
    """Rename or describe a skill (``description=""`` clears it)."""
    skill = await get_skill(session, tenant_id=tenant_id, skill_id=skill_id)
    changes: dict[str, Any] = {}
    if name is not None:
        name = _skill_name(name)
        if await _skill_name_in_use(session, tenant_id=tenant_id, name=name, except_id=skill.id):
            raise _skill_name_taken()
        if name != skill.name:
            skill.name = changes["name"] = name
    if description is not None and _description(description) != skill.description:
        skill.description = changes["description"] = _description(description)
    if changes:
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="skill.updated", target=f"skill:{skill.id}", detail=changes)
    return skill


async def delete_skill(session: AsyncSession, *, tenant_id: uuid.UUID, skill_id: uuid.UUID, actor: str) -> None:
    """Delete an unused skill; one that agents or queues hold is 409 ``skill_in_use``."""
    skill = await get_skill(session, tenant_id=tenant_id, skill_id=skill_id)
    in_use = await session.scalar(
        select(
            exists().where(AgentSkill.tenant_id == tenant_id, AgentSkill.skill_id == skill.id)
            | exists().where(QueueSkill.tenant_id == tenant_id, QueueSkill.skill_id == skill.id)
        )
    )
    if in_use:
        raise Problem(409, "skill_in_use", "agents or queues have this skill; remove it from them first")
    await session.delete(skill)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="skill.deleted", target=f"skill:{skill.id}", detail={"name": skill.name})


# --- skills of agents and queues --------------------------------------------------------


@dataclass(frozen=True)
class AgentSkillLevel:
    skill_id: uuid.UUID
    proficiency: int


@dataclass(frozen=True)
class QueueSkillNeed:
    skill_id: uuid.UUID
    min_proficiency: int = 1
    required: bool = True


def _check_level(value: int, *, what: str) -> int:
    if not PROFICIENCY_MIN <= value <= PROFICIENCY_MAX:
        raise Problem(400, "invalid_proficiency", f"{what} must be between {PROFICIENCY_MIN} and {PROFICIENCY_MAX}")
    return value


async def _check_skill_set(session: AsyncSession, *, tenant_id: uuid.UUID, skill_ids: Sequence[uuid.UUID]) -> None:
    """At most 100 distinct skills of the tenant: 400 ``too_many_skills`` / ``duplicate_skill``, 404 for an unknown or foreign one."""
    if len(skill_ids) > MAX_SKILLS_PER_SET:
        raise Problem(400, "too_many_skills", f"at most {MAX_SKILLS_PER_SET} skills")
    if len(set(skill_ids)) != len(skill_ids):
        raise Problem(400, "duplicate_skill", "each skill may appear once")
    if skill_ids:
        known = set(await session.scalars(select(Skill.id).where(Skill.tenant_id == tenant_id, Skill.id.in_(set(skill_ids)))))
        if known != set(skill_ids):
            raise not_found("skill")


async def agent_skills(session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> list[AgentSkill]:
    await agents_service.get_agent_row(session, tenant_id=tenant_id, agent_id=agent_id)
    return list(await session.scalars(
        select(AgentSkill).join(Skill, (Skill.tenant_id == AgentSkill.tenant_id) & (Skill.id == AgentSkill.skill_id))
        .where(AgentSkill.tenant_id == tenant_id, AgentSkill.agent_id == agent_id).order_by(Skill.name, Skill.id)
    ))


async def set_agent_skills(
    session: AsyncSession, *, tenant_id: uuid.UUID, agent_id: uuid.UUID, skills: Sequence[AgentSkillLevel], actor: str
) -> list[AgentSkill]:
    """Replace the agent's skills with ``skills`` (proficiency 1-10 each)."""
    await agents_service.get_agent_row(session, tenant_id=tenant_id, agent_id=agent_id)
    for level in skills:
        _check_level(level.proficiency, what="proficiency")
    await _check_skill_set(session, tenant_id=tenant_id, skill_ids=[level.skill_id for level in skills])
    current = {row.skill_id: row.proficiency for row in await agent_skills(session, tenant_id=tenant_id, agent_id=agent_id)}
    wanted = {level.skill_id: level.proficiency for level in skills}
    if current != wanted:
        await session.execute(delete(AgentSkill).where(AgentSkill.tenant_id == tenant_id, AgentSkill.agent_id == agent_id))
        session.add_all(AgentSkill(tenant_id=tenant_id, agent_id=agent_id, skill_id=s, proficiency=p) for s, p in wanted.items())
        await session.flush()
        await audit.record(
            session, tenant_id=tenant_id, actor=actor, action="agent.skills_changed", target=f"agent:{agent_id}",
            detail={"skills": {str(s): p for s, p in sorted(wanted.items(), key=lambda item: str(item[0]))}},
        )
    return await agent_skills(session, tenant_id=tenant_id, agent_id=agent_id)


async def queue_skills(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> list[QueueSkill]:
    await queues_service.get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    return list(await session.scalars(
        select(QueueSkill).join(Skill, (Skill.tenant_id == QueueSkill.tenant_id) & (Skill.id == QueueSkill.skill_id))
        .where(QueueSkill.tenant_id == tenant_id, QueueSkill.queue_id == queue_id).order_by(Skill.name, Skill.id)
    ))


async def set_queue_skills(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, skills: Sequence[QueueSkillNeed], actor: str
) -> list[QueueSkill]:
    """Replace the skills the queue's calls need (``required``) or prefer, each with a minimum proficiency 1-10."""
    await queues_service.get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    for need in skills:
        _check_level(need.min_proficiency, what="min_proficiency")
    await _check_skill_set(session, tenant_id=tenant_id, skill_ids=[need.skill_id for need in skills])
    current = {row.skill_id: (row.min_proficiency, row.required) for row in await queue_skills(session, tenant_id=tenant_id, queue_id=queue_id)}
    wanted = {need.skill_id: (need.min_proficiency, need.required) for need in skills}
    if current != wanted:
        await session.execute(delete(QueueSkill).where(QueueSkill.tenant_id == tenant_id, QueueSkill.queue_id == queue_id))
        session.add_all(
            QueueSkill(tenant_id=tenant_id, queue_id=queue_id, skill_id=s, min_proficiency=level, required=required)
            for s, (level, required) in wanted.items()
        )
        await session.flush()
        await audit.record(
            session, tenant_id=tenant_id, actor=actor, action="queue.skills_changed", target=f"queue:{queue_id}",
            detail={"skills": [{"skill_id": str(s), "min_proficiency": level, "required": required}
                               for s, (level, required) in sorted(wanted.items(), key=lambda item: str(item[0]))]},
        )
    return await queue_skills(session, tenant_id=tenant_id, queue_id=queue_id)


# --- reason codes and wrap-up codes --------------------------------------------------------


@dataclass(frozen=True)
class CodeKind:
    """Reason codes and wrap-up codes behave alike; this says which table and words."""

    model: type[ReasonCode] | type[WrapUpCode]
    noun: str  # "reason code"
    audit_prefix: str  # "reason_code"
    reserved: frozenset[str] = frozenset()


REASON_CODES = CodeKind(ReasonCode, "reason code", "reason_code", SYSTEM_REASON_CODES)
WRAP_UP_CODES = CodeKind(WrapUpCode, "wrap-up code", "wrap_up_code")


def _code_taken(kind: CodeKind) -> Problem:
    return Problem(409, f"{kind.audit_prefix}_taken", f"a {kind.noun} with this code already exists (an inactive one can be reactivated)")


def _label(label: str) -> str:
    return check_text(label, code="invalid_label", what="the label")


async def get_code(session: AsyncSession, kind: CodeKind, *, tenant_id: uuid.UUID, code_id: uuid.UUID) -> ReasonCode | WrapUpCode:
    model = kind.model
    row = await session.scalar(select(model).where(model.tenant_id == tenant_id, model.id == code_id))
    if row is None:
        raise not_found(kind.noun)
    return row


async def list_codes(session: AsyncSession, kind: CodeKind, *, tenant_id: uuid.UUID, active_only: bool = False) -> list[Any]:
    model = kind.model
    query = select(model).where(model.tenant_id == tenant_id)
    if active_only:
        query = query.where(model.active.is_(True))
    return list(await session.scalars(query.order_by(model.code)))


async def create_code(session: AsyncSession, kind: CodeKind, *, tenant_id: uuid.UUID, code: str, label: str, actor: str) -> Any:
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise Problem(400, "invalid_code", "a code is 1 to 64 lower-case letters, digits and underscores, starting with a letter")
    if code in kind.reserved:
        raise Problem(400, f"reserved_{kind.audit_prefix}", f"{code!r} is a {kind.noun} Kefu sets itself; choose another code",
                      reserved=sorted(kind.reserved))
    label = _label(label)
    model = kind.model
    if await session.scalar(select(model.id).where(model.tenant_id == tenant_id, model.code == code)) is not None:
        raise _code_taken(kind)
    row = model(tenant_id=tenant_id, code=code, label=label, active=True, created_at=utcnow())
    await add_unique(session, row, _code_taken(kind))
    await audit.record(session, tenant_id=tenant_id, actor=actor, action=f"{kind.audit_prefix}.created", target=f"{kind.audit_prefix}:{row.id}",
                       detail={"code": code, "label": label})
    return row


async def update_code(
    session: AsyncSession, kind: CodeKind, *, tenant_id: uuid.UUID, code_id: uuid.UUID, actor: str, label: str | None = None, active: bool | None = None
) -> Any:
    """Relabel, deactivate or reactivate a code; the code itself never changes (history names it)."""
    row = await get_code(session, kind, tenant_id=tenant_id, code_id=code_id)
    changes: dict[str, Any] = {}
    if label is not None and _label(label) != row.label:
        row.label = changes["label"] = _label(label)
    if active is not None and active != row.active:
        row.active = changes["active"] = active
    if changes:
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action=f"{kind.audit_prefix}.updated", target=f"{kind.audit_prefix}:{row.id}",
                           detail={"code": row.code, **changes})
    return row


async def deactivate_code(session: AsyncSession, kind: CodeKind, *, tenant_id: uuid.UUID, code_id: uuid.UUID, actor: str) -> None:
    await update_code(session, kind, tenant_id=tenant_id, code_id=code_id, actor=actor, active=False)


# --- schedules --------------------------------------------------------------------------


def _schedule_name_taken() -> Problem:
    return Problem(409, "schedule_name_taken", "a schedule with this name already exists")


async def get_schedule(session: AsyncSession, *, tenant_id: uuid.UUID, schedule_id: uuid.UUID) -> Schedule:
    schedule = await session.scalar(select(Schedule).where(Schedule.tenant_id == tenant_id, Schedule.id == schedule_id))
    if schedule is None:
        raise not_found("schedule")
    return schedule


async def list_schedules(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Schedule]:
    return list(await session.scalars(select(Schedule).where(Schedule.tenant_id == tenant_id).order_by(Schedule.name, Schedule.id)))


async def _schedule_name_in_use(session: AsyncSession, *, tenant_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None) -> bool:
    query = select(Schedule.id).where(Schedule.tenant_id == tenant_id, Schedule.name == name)
    if except_id is not None:
        query = query.where(Schedule.id != except_id)
    return await session.scalar(query) is not None


def _sorted_holidays(holidays: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({"date": h["date"], "name": h.get("name", ""), "hours": h.get("hours", [])} for h in holidays), key=lambda h: h["date"])


async def create_schedule(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, time_zone: str, weekly: dict[str, Any], holidays: list[dict[str, Any]], actor: str
) -> Schedule:
    name = check_text(name, code="invalid_name", what="the name")
    schedules.validate(time_zone, weekly, holidays)
    if await _schedule_name_in_use(session, tenant_id=tenant_id, name=name):
        raise _schedule_name_taken()
    schedule = Schedule(tenant_id=tenant_id, name=name, time_zone=time_zone, weekly=dict(weekly), holidays=_sorted_holidays(holidays), created_at=utcnow())
    await add_unique(session, schedule, _schedule_name_taken())
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="schedule.created", target=f"schedule:{schedule.id}",
                       detail={"name": name, "time_zone": time_zone})
    return schedule


async def update_schedule(
    session: AsyncSession, *, tenant_id: uuid.UUID, schedule_id: uuid.UUID, actor: str, name: str | None = None, time_zone: str | None = None,
    weekly: dict[str, Any] | None = None, holidays: list[dict[str, Any]] | None = None,
) -> Schedule:
    """Change any of the schedule's parts; the result is validated as a whole."""
    schedule = await get_schedule(session, tenant_id=tenant_id, schedule_id=schedule_id)
    new_zone = schedule.time_zone if time_zone is None else time_zone
    new_weekly = schedule.weekly if weekly is None else weekly
    new_holidays = schedule.holidays if holidays is None else holidays
    schedules.validate(new_zone, new_weekly, new_holidays)
    changes: dict[str, Any] = {}
    if name is not None:
        name = check_text(name, code="invalid_name", what="the name")
        if await _schedule_name_in_use(session, tenant_id=tenant_id, name=name, except_id=schedule.id):
            raise _schedule_name_taken()
        if name != schedule.name:
            schedule.name = changes["name"] = name
    if new_zone != schedule.time_zone:
        schedule.time_zone = changes["time_zone"] = new_zone
    if weekly is not None and dict(weekly) != schedule.weekly:
        schedule.weekly = dict(weekly)
        changes["weekly"] = True
    if holidays is not None and _sorted_holidays(holidays) != schedule.holidays:
        schedule.holidays = _sorted_holidays(holidays)
        changes["holidays"] = True
    if changes:
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="schedule.updated", target=f"schedule:{schedule.id}", detail=changes)
    return schedule


async def delete_schedule(session: AsyncSession, *, tenant_id: uuid.UUID, schedule_id: uuid.UUID, actor: str) -> None:
    """Delete a schedule no queue uses; otherwise 409 ``schedule_in_use``."""
    schedule = await get_schedule(session, tenant_id=tenant_id, schedule_id=schedule_id)
    in_use = await session.scalar(select(exists().where(Queue.tenant_id == tenant_id, Queue.schedule_id == schedule.id)))
    if in_use:
        raise Problem(409, "schedule_in_use", "a queue uses this schedule; give the queue another schedule first")
    await session.delete(schedule)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="schedule.deleted", target=f"schedule:{schedule.id}", detail={"name": schedule.name})


@dataclass(frozen=True)
class ScheduleStatus:
    open: bool
    next_change: datetime | None


def schedule_status(schedule: Schedule, now: datetime) -> ScheduleStatus:
    return ScheduleStatus(open=schedules.is_open(schedule, now), next_change=schedules.next_change(schedule, now))
