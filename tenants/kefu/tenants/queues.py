"""Queues, their members, and entry points (web click-to-call widget keys).

Every function takes ``tenant_id`` keyword-only; a foreign id answers like a
missing one.  Deleting a queue that calls, entry points or another queue's
overflow or max-wait rule refer to is refused (409 ``queue_in_use``): call
history is never deleted as a side effect, and no routing rule is left dangling.

A queue's routing rules (strategy, timers, overflow, relaxation, wrap-up,
schedule) are validated as a whole, after merging a change into the current
values, with the codes docs/acd-configuration.md lists.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.models import Agent, Call, EntryPoint, IvrFlow, Queue, QueueMember, QueueSkill, Schedule

MAX_WAIT_LIMIT_S = 24 * 3600
TIMER_LIMIT_S = 24 * 3600

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "least_talk_time", "ring_all", "linear", "random")
MAX_WAIT_ACTIONS = ("hangup", "voicemail", "callback", "queue")
OVERFLOW_ACTIONS = ("voicemail", "callback", "queue")
CLOSED_ACTIONS = ("hangup", "voicemail", "callback")
WRAP_UP_MODES = ("none", "fixed", "extendable", "agent_ended")

# Every routing rule of a queue and its value for a new queue (the models' defaults).
RULE_DEFAULTS: dict[str, Any] = {
    "strategy": "longest_idle",
    "ring_timeout_s": None,
    "max_wait_s": 600,
    "max_wait_action": "hangup",
    "max_wait_queue_id": None,
    "overflow_after_s": None,
    "overflow_ratio": None,
    "overflow_action": None,
    "overflow_queue_id": None,
    "relax_after_s": None,
    "relax_any_after_s": None,
    "preferred_agent_timeout_s": 0,
    "wrap_up_mode": "none",
    "wrap_up_s": 0,
    "wrap_up_max_s": 0,
    "disposition_required": False,
    "service_level_s": 20,
    "announce_interval_s": 0,
    "schedule_id": None,
    "closed_action": "hangup",
}


def _check_max_wait(value: int) -> int:
    if not 1 <= value <= MAX_WAIT_LIMIT_S:
        raise Problem(400, "invalid_max_wait", f"max_wait_s must be between 1 and {MAX_WAIT_LIMIT_S}")
    return value


def _between(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_optional_timer(rules: Mapping[str, Any], name: str, code: str, low: int = 1, high: int = TIMER_LIMIT_S) -> None:
    value = rules[name]
    if value is not None and not _between(value, low, high):
        raise Problem(400, code, f"{name} must be between {low} and {high} seconds, or null")


def check_rules(rules: Mapping[str, Any]) -> None:
    """The 400s of a queue's complete rules (every key of RULE_DEFAULTS); ids are checked by ``_check_rule_references``."""
    if rules["strategy"] not in STRATEGIES:
        raise Problem(400, "invalid_strategy", f"strategy must be one of {', '.join(STRATEGIES)}")
    _check_optional_timer(rules, "ring_timeout_s", "invalid_ring_timeout", 5, 300)
    _check_max_wait(rules["max_wait_s"])
    if rules["max_wait_action"] not in MAX_WAIT_ACTIONS:
        raise Problem(400, "invalid_max_wait_action", f"max_wait_action must be one of {', '.join(MAX_WAIT_ACTIONS)}")
    if (rules["max_wait_action"] == "queue") != (rules["max_wait_queue_id"] is not None):
        raise Problem(400, "invalid_max_wait_queue", "max_wait_queue_id is needed with max_wait_action \"queue\", and only with it")
    _check_optional_timer(rules, "overflow_after_s", "invalid_overflow")
    ratio = rules["overflow_ratio"]
    if ratio is not None and not (isinstance(ratio, int | float) and not isinstance(ratio, bool) and math.isfinite(ratio) and 0 < ratio <= 1000):
        raise Problem(400, "invalid_overflow", "overflow_ratio must be above 0 and at most 1000 waiting calls per logged-in member, or null")
    action = rules["overflow_action"]
    if action is not None and action not in OVERFLOW_ACTIONS:
        raise Problem(400, "invalid_overflow_action", f"overflow_action must be one of {', '.join(OVERFLOW_ACTIONS)}, or null")
    has_trigger = rules["overflow_after_s"] is not None or ratio is not None
    if (action is not None) != has_trigger:
        raise Problem(400, "invalid_overflow", "an overflow_action needs overflow_after_s or overflow_ratio, and they need an overflow_action")
    if (action == "queue") != (rules["overflow_queue_id"] is not None):
        raise Problem(400, "invalid_overflow_queue", "overflow_queue_id is needed with overflow_action \"queue\", and only with it")
    _check_optional_timer(rules, "relax_after_s", "invalid_relaxation")
    _check_optional_timer(rules, "relax_any_after_s", "invalid_relaxation")
    if rules["relax_after_s"] is not None and rules["relax_any_after_s"] is not None and rules["relax_any_after_s"] <= rules["relax_after_s"]:
        raise Problem(400, "invalid_relaxation", "relax_any_after_s must be later than relax_after_s")
    if not _between(rules["preferred_agent_timeout_s"], 0, 3600):
        raise Problem(400, "invalid_preferred_agent_timeout", "preferred_agent_timeout_s must be between 0 (off) and 3600")
    mode = rules["wrap_up_mode"]
    if mode not in WRAP_UP_MODES:
        raise Problem(400, "invalid_wrap_up", f"wrap_up_mode must be one of {', '.join(WRAP_UP_MODES)}")
    if not _between(rules["wrap_up_s"], 0, 3600) or not _between(rules["wrap_up_max_s"], 0, 3600):
        raise Problem(400, "invalid_wrap_up", "wrap_up_s and wrap_up_max_s must be between 0 and 3600")
    if mode in ("fixed", "extendable") and rules["wrap_up_s"] < 1:
        raise Problem(400, "invalid_wrap_up", f"wrap_up_mode {mode} needs wrap_up_s of at least 1")
    if mode == "extendable" and rules["wrap_up_max_s"] < rules["wrap_up_s"]:
        raise Problem(400, "invalid_wrap_up", "wrap_up_mode extendable needs wrap_up_max_s of at least wrap_up_s")
    if not isinstance(rules["disposition_required"], bool):
        raise Problem(400, "invalid_wrap_up", "disposition_required must be true or false")
    if not _between(rules["service_level_s"], 1, 3600):
        raise Problem(400, "invalid_service_level", "service_level_s must be between 1 and 3600")
    announce = rules["announce_interval_s"]
    if not (_between(announce, 0, 0) or _between(announce, 15, 3600)):
        raise Problem(400, "invalid_announce_interval", "announce_interval_s must be 0 (off) or between 15 and 3600")
    if rules["closed_action"] not in CLOSED_ACTIONS:
        raise Problem(400, "invalid_closed_action", f"closed_action must be one of {', '.join(CLOSED_ACTIONS)}")


async def _check_rule_references(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID | None, rules: Mapping[str, Any]) -> None:
    """Target queues are other queues of the tenant (400 for the queue itself, 404 for an unknown
    or foreign one); the schedule is the tenant's (404)."""
    for name, code in (("overflow_queue_id", "invalid_overflow_queue"), ("max_wait_queue_id", "invalid_max_wait_queue")):
        target = rules[name]
        if target is not None and target == queue_id:
            raise Problem(400, code, f"{name} must name another queue, not this one")
    for name in ("overflow_queue_id", "max_wait_queue_id"):
        if rules[name] is not None:
            await get_queue(session, tenant_id=tenant_id, queue_id=rules[name])
    if rules["schedule_id"] is not None:
        found = await session.scalar(select(Schedule.id).where(Schedule.tenant_id == tenant_id, Schedule.id == rules["schedule_id"]))
        if found is None:
            raise not_found("schedule")


def rules_of(queue: Queue) -> dict[str, Any]:
    return {name: getattr(queue, name) for name in RULE_DEFAULTS}


async def _merged_rules(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID | None, current: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    unknown = set(changes) - set(RULE_DEFAULTS)
    if unknown:
        raise ValueError(f"not queue rules: {sorted(unknown)}")
    rules = {**current, **changes}
    check_rules(rules)
    await _check_rule_references(session, tenant_id=tenant_id, queue_id=queue_id, rules=rules)
    return rules


def _audit_value(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


async def get_queue(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> Queue:
    queue = await session.scalar(select(Queue).where(Queue.tenant_id == tenant_id, Queue.id == queue_id))
    if queue is None:
        raise not_found("queue")
    return queue


async def list_queues(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Queue]:
    return list(await session.scalars(select(Queue).where(Queue.tenant_id == tenant_id).order_by(Queue.name, Queue.id)))


async def member_ids(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(QueueMember.agent_id).where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue_id)
    )
    return sorted(rows, key=str)


async def members_by_queue(session: AsyncSession, *, tenant_id: uuid.UUID) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Every queue's member agent ids in one query (the queue list)."""
    members: dict[uuid.UUID, list[uuid.UUID]] = {}
    rows = await session.execute(
        select(QueueMember.queue_id, QueueMember.agent_id).where(QueueMember.tenant_id == tenant_id)
    )
    for queue_id, agent_id in rows:
        members.setdefault(queue_id, []).append(agent_id)
    return {queue_id: sorted(agents, key=str) for queue_id, agents in members.items()}


async def _name_taken(session: AsyncSession, *, tenant_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None) -> bool:
    query = select(Queue.id).where(Queue.tenant_id == tenant_id, Queue.name == name)
    if except_id is not None:
        query = query.where(Queue.id != except_id)
    return await session.scalar(query) is not None


async def create_queue(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, actor: str, max_wait_s: int = 600, rules: Mapping[str, Any] | None = None
) -> Queue:
    """A new queue; ``rules`` holds any of RULE_DEFAULTS' keys (the rest keep their defaults)."""
    name = check_text(name, code="invalid_name", what="the name")
    values = await _merged_rules(session, tenant_id=tenant_id, queue_id=None, current=RULE_DEFAULTS, changes={"max_wait_s": max_wait_s, **(rules or {})})
    if await _name_taken(session, tenant_id=tenant_id, name=name):
        raise Problem(409, "queue_name_taken", "a queue with this name already exists")
    queue = Queue(tenant_id=tenant_id, name=name, created_at=utcnow(), **values)
    try:
        async with session.begin_nested():
            session.add(queue)
            await session.flush()
    except IntegrityError:
        raise Problem(409, "queue_name_taken", "a queue with this name already exists") from None
    changed = {k: _audit_value(v) for k, v in values.items() if v != RULE_DEFAULTS[k]}
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="queue.created", target=f"queue:{queue.id}", detail={"name": name, **changed})
    return queue


async def update_queue(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, actor: str, name: str | None = None, max_wait_s: int | None = None,
    rules: Mapping[str, Any] | None = None,
) -> Queue:
    """Rename the queue or change rules; ``rules`` holds the changed keys only (None clears a nullable rule)."""
    queue = await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    wanted = dict(rules or {})
    if max_wait_s is not None:
        wanted["max_wait_s"] = max_wait_s
    changes: dict[str, object] = {}
    if name is not None:
        name = check_text(name, code="invalid_name", what="the name")
    values = await _merged_rules(session, tenant_id=tenant_id, queue_id=queue.id, current=rules_of(queue), changes=wanted)
    if name is not None:
        if await _name_taken(session, tenant_id=tenant_id, name=name, except_id=queue.id):
            raise Problem(409, "queue_name_taken", "a queue with this name already exists")
        if name != queue.name:
            queue.name = changes["name"] = name
    for key, value in values.items():
        if getattr(queue, key) != value:
            setattr(queue, key, value)
            changes[key] = _audit_value(value)
    if changes:
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="queue.updated", target=f"queue:{queue.id}", detail=changes)
    return queue


async def delete_queue(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, actor: str) -> None:
    queue = await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    in_use = await session.scalar(
        select(
            exists().where(EntryPoint.tenant_id == tenant_id, EntryPoint.queue_id == queue.id)
            | exists().where(Call.tenant_id == tenant_id, Call.queue_id == queue.id)
        )
    )
    if in_use:
        raise Problem(409, "queue_in_use", "entry points or calls refer to this queue; it cannot be deleted")
    target_of = await session.scalar(
        select(Queue.name).where(
            Queue.tenant_id == tenant_id, Queue.id != queue.id, (Queue.overflow_queue_id == queue.id) | (Queue.max_wait_queue_id == queue.id)
        ).limit(1)
    )
    if target_of is not None:
        raise Problem(409, "queue_in_use", f"the queue {target_of!r} sends calls here (overflow or max wait); it cannot be deleted")
    await session.execute(delete(QueueMember).where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id))
    await session.execute(delete(QueueSkill).where(QueueSkill.tenant_id == tenant_id, QueueSkill.queue_id == queue.id))
    await session.delete(queue)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="queue.deleted", target=f"queue:{queue.id}", detail={"name": queue.name})


async def set_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, agent_ids: list[uuid.UUID], actor: str
) -> list[uuid.UUID]:
    """Replace the queue's members; an unknown (or foreign) agent id answers 404.

    The list's order is the members' ``position`` (the linear strategy's order);
    an agent listed twice keeps its first place.
    """
    queue = await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    ordered = list(dict.fromkeys(agent_ids))
    wanted = set(ordered)
    if len(wanted) > 1000:
        raise Problem(400, "too_many_members", "a queue may have at most 1000 members")
    known = set(await session.scalars(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id.in_(wanted)))) if wanted else set()
    if known != wanted:
        raise not_found("agent")
    rows = {
        row.agent_id: row
        for row in await session.scalars(select(QueueMember).where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id))
    }
    current = set(rows)
    old_order = sorted(rows, key=lambda agent_id: (rows[agent_id].position, str(agent_id)))
    if current - wanted:
        await session.execute(
            delete(QueueMember).where(
                QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id, QueueMember.agent_id.in_(current - wanted)
            )
        )
    for position, agent_id in enumerate(ordered):
        if agent_id in rows:
            rows[agent_id].position = position
        else:
            session.add(QueueMember(tenant_id=tenant_id, queue_id=queue.id, agent_id=agent_id, position=position))
    await session.flush()
    if old_order != ordered:
        await audit.record(
            session, tenant_id=tenant_id, actor=actor, action="queue.members_changed", target=f"queue:{queue.id}",
            detail={"agent_ids": sorted(str(a) for a in wanted), "order": [str(a) for a in ordered]},
        )
    return sorted(wanted, key=str)


# --- entry points -----------------------------------------------------------


def new_widget_key() -> str:
    """A public but unguessable key (192 random bits) identifying the entry point and its tenant."""
    return "wk_" + secrets.token_urlsafe(24)


ENTRY_PRIORITY_MIN, ENTRY_PRIORITY_MAX = -100, 100


def _check_entry_priority(priority: Any) -> int:
    if not _between(priority, ENTRY_PRIORITY_MIN, ENTRY_PRIORITY_MAX):
        raise Problem(400, "invalid_priority", f"priority must be between {ENTRY_PRIORITY_MIN} and {ENTRY_PRIORITY_MAX}")
    return int(priority)


async def _check_entry_flow(session: AsyncSession, *, tenant_id: uuid.UUID, flow_id: uuid.UUID) -> None:
    """An entry point's flow is one of the tenant's, and published (a call needs a live version)."""
    published = await session.scalar(select(IvrFlow.published_version).where(IvrFlow.tenant_id == tenant_id, IvrFlow.id == flow_id))
    if published is None:
        exists_at_all = await session.scalar(select(IvrFlow.id).where(IvrFlow.tenant_id == tenant_id, IvrFlow.id == flow_id))
        if exists_at_all is None:
            raise not_found("IVR flow")
        raise Problem(409, "flow_not_published", "publish the flow before callers can go through it")


async def create_entry_point(
    session: AsyncSession, *, tenant_id: uuid.UUID, name: str, queue_id: uuid.UUID, actor: str, priority: int = 0,
    flow_id: uuid.UUID | None = None,
) -> EntryPoint:
    """A web entry point; its calls go through ``flow_id``'s live version first (when
    given) and queue at ``priority`` (-100..100, higher is answered first)."""
    name = check_text(name, code="invalid_name", what="the name")
    priority = _check_entry_priority(priority)
    await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    if flow_id is not None:
        await _check_entry_flow(session, tenant_id=tenant_id, flow_id=flow_id)
    entry = EntryPoint(
        tenant_id=tenant_id, name=name, kind="web", widget_key=new_widget_key(), queue_id=queue_id, priority=priority, enabled=True,
        created_at=utcnow(), flow_id=flow_id,
    )
    session.add(entry)
    await session.flush()
    await audit.record(
        session, tenant_id=tenant_id, actor=actor, action="entry_point.created", target=f"entry_point:{entry.id}",
        detail={"name": name, "queue_id": str(queue_id), "priority": priority, "flow_id": str(flow_id) if flow_id else None},
    )
    return entry


async def update_entry_point(
    session: AsyncSession, *, tenant_id: uuid.UUID, entry_point_id: uuid.UUID, changes: Mapping[str, Any], actor: str
) -> EntryPoint:
    """Change an entry point's name, queue, priority or flow (``flow_id`` None: no flow).
    Calls already in a flow keep the version they started with."""
    entry = await get_entry_point(session, tenant_id=tenant_id, entry_point_id=entry_point_id)
    detail: dict[str, Any] = {}
    if changes.get("name") is not None:
        entry.name = detail["name"] = check_text(changes["name"], code="invalid_name", what="the name")
    if changes.get("queue_id") is not None:
        await get_queue(session, tenant_id=tenant_id, queue_id=changes["queue_id"])
        entry.queue_id = changes["queue_id"]
        detail["queue_id"] = str(entry.queue_id)
    if changes.get("priority") is not None:
        entry.priority = detail["priority"] = _check_entry_priority(changes["priority"])
    if "flow_id" in changes:
        if changes["flow_id"] is not None:
            await _check_entry_flow(session, tenant_id=tenant_id, flow_id=changes["flow_id"])
        entry.flow_id = changes["flow_id"]
        detail["flow_id"] = str(entry.flow_id) if entry.flow_id else None
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="entry_point.updated", target=f"entry_point:{entry.id}", detail=detail)
    return entry


async def get_entry_point(session: AsyncSession, *, tenant_id: uuid.UUID, entry_point_id: uuid.UUID) -> EntryPoint:
    entry = await session.scalar(select(EntryPoint).where(EntryPoint.tenant_id == tenant_id, EntryPoint.id == entry_point_id, EntryPoint.enabled.is_(True)))
    if entry is None:
        raise not_found("entry point")
    return entry


async def list_entry_points(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[EntryPoint]:
    return list(await session.scalars(select(EntryPoint).where(EntryPoint.tenant_id == tenant_id, EntryPoint.enabled.is_(True)).order_by(EntryPoint.name, EntryPoint.id)))


async def delete_entry_point(session: AsyncSession, *, tenant_id: uuid.UUID, entry_point_id: uuid.UUID, actor: str) -> None:
    """Delete the entry point; one that calls refer to is disabled instead (its key stops working)."""
    entry = await get_entry_point(session, tenant_id=tenant_id, entry_point_id=entry_point_id)
    in_use = await session.scalar(select(exists().where(Call.tenant_id == tenant_id, Call.entry_point_id == entry.id)))
    if in_use:
        # History keeps the row; the widget key stops working at once.
        entry.enabled = False
        entry.widget_key = "deleted_" + secrets.token_hex(16)
    else:
        await session.delete(entry)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="entry_point.deleted", target=f"entry_point:{entry.id}")
