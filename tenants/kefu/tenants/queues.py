"""Queues, their members, and entry points (web click-to-call widget keys).

Every function takes ``tenant_id`` keyword-only; a foreign id answers like a
missing one.  Deleting a queue that calls or entry points refer to is refused
(409 ``queue_in_use``): call history is never deleted as a side effect.
"""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.models import Agent, Call, EntryPoint, Queue, QueueMember

MAX_WAIT_LIMIT_S = 24 * 3600



def _check_max_wait(value: int) -> int:
    if not 1 <= value <= MAX_WAIT_LIMIT_S:
        raise Problem(400, "invalid_max_wait", f"max_wait_s must be between 1 and {MAX_WAIT_LIMIT_S}")
    return value


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


async def create_queue(session: AsyncSession, *, tenant_id: uuid.UUID, name: str, actor: str, max_wait_s: int = 600) -> Queue:
    name = check_text(name, code="invalid_name", what="the name")
    max_wait_s = _check_max_wait(max_wait_s)
    if await _name_taken(session, tenant_id=tenant_id, name=name):
        raise Problem(409, "queue_name_taken", "a queue with this name already exists")
    queue = Queue(tenant_id=tenant_id, name=name, max_wait_s=max_wait_s, strategy="longest_idle", created_at=utcnow())
    try:
        async with session.begin_nested():
            session.add(queue)
            await session.flush()
    except IntegrityError:
        raise Problem(409, "queue_name_taken", "a queue with this name already exists") from None
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="queue.created", target=f"queue:{queue.id}", detail={"name": name})
    return queue


async def update_queue(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, actor: str, name: str | None = None, max_wait_s: int | None = None
) -> Queue:
    queue = await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    changes: dict[str, object] = {}
    if name is not None:
        name = check_text(name, code="invalid_name", what="the name")
        if await _name_taken(session, tenant_id=tenant_id, name=name, except_id=queue.id):
            raise Problem(409, "queue_name_taken", "a queue with this name already exists")
        queue.name = changes["name"] = name
    if max_wait_s is not None:
        queue.max_wait_s = changes["max_wait_s"] = _check_max_wait(max_wait_s)
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
    await session.execute(delete(QueueMember).where(QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id))
    await session.delete(queue)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="queue.deleted", target=f"queue:{queue.id}", detail={"name": queue.name})


async def set_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, agent_ids: list[uuid.UUID], actor: str
) -> list[uuid.UUID]:
    """Replace the queue's members; an unknown (or foreign) agent id answers 404."""
    queue = await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    wanted = set(agent_ids)
    if len(wanted) > 1000:
        raise Problem(400, "too_many_members", "a queue may have at most 1000 members")
    known = set(await session.scalars(select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.id.in_(wanted)))) if wanted else set()
    if known != wanted:
        raise not_found("agent")
    current = set(await member_ids(session, tenant_id=tenant_id, queue_id=queue.id))
    if current - wanted:
        await session.execute(
            delete(QueueMember).where(
                QueueMember.tenant_id == tenant_id, QueueMember.queue_id == queue.id, QueueMember.agent_id.in_(current - wanted)
            )
        )
    for agent_id in sorted(wanted - current, key=str):
        session.add(QueueMember(tenant_id=tenant_id, queue_id=queue.id, agent_id=agent_id))
    await session.flush()
    if current != wanted:
        await audit.record(
            session, tenant_id=tenant_id, actor=actor, action="queue.members_changed", target=f"queue:{queue.id}",
            detail={"agent_ids": sorted(str(a) for a in wanted)},
        )
    return sorted(wanted, key=str)


# --- entry points -----------------------------------------------------------


def new_widget_key() -> str:
    """A public but unguessable key (192 random bits) identifying the entry point and its tenant."""
    return "wk_" + secrets.token_urlsafe(24)


async def create_entry_point(session: AsyncSession, *, tenant_id: uuid.UUID, name: str, queue_id: uuid.UUID, actor: str) -> EntryPoint:
    name = check_text(name, code="invalid_name", what="the name")
    await get_queue(session, tenant_id=tenant_id, queue_id=queue_id)
    entry = EntryPoint(tenant_id=tenant_id, name=name, kind="web", widget_key=new_widget_key(), queue_id=queue_id, enabled=True, created_at=utcnow())
    session.add(entry)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="entry_point.created", target=f"entry_point:{entry.id}", detail={"name": name, "queue_id": str(queue_id)})
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
