"""The call log: appending call events and deriving call-detail records from them.

The event log is the source of truth for "what happened on a call"; the
``calls`` row is a projection kept for routing and listing.  Appends happen in
a transaction that has already locked the call row (a conditional UPDATE is
always the first write), so ``seq`` numbers never collide.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.problems import not_found
from kefu.tenants.models import Agent, Call, CallEvent, Queue, QueueMember, Recording, Voicemail


async def lock_call(session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, events_next: bool = False) -> Call | None:
    """Lock the call row for this transaction (a no-op UPDATE comes first, on both
    SQLite and PostgreSQL) and return it, or None when it does not exist.

    ``events_next``: the transaction appends events next, so the same statement reads the
    call's last event number too (``append_event`` then reads nothing)."""
    # One statement: the UPDATE takes the lock and RETURNING hands back the fresh row.
    locking = update(Call).where(Call.tenant_id == tenant_id, Call.id == call_id).values(status=Call.status)
    if not events_next:
        return await session.scalar(locking.returning(Call), execution_options={"populate_existing": True})
    last_seq = (
        select(func.coalesce(func.max(CallEvent.seq), 0)).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id).scalar_subquery()
    )
    row = (await session.execute(locking.returning(Call, last_seq), execution_options={"populate_existing": True})).first()
    if row is None:
        return None
    numbers: dict[uuid.UUID, int] = session.info.setdefault(_LAST_SEQ, {})
    numbers.setdefault(call_id, row[1])  # events this transaction already numbered keep their count
    return row[0]


async def lock_agent(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    when: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
) -> Agent | None:
    """Lock the agent row with a conditional UPDATE (``when``; ``values`` to change, else
    a no-op) and return it fresh, or None when no row matched.

    Lock order everywhere: the agent row first, then the call row (as the router does).
    """
    return await session.scalar(
        update(Agent).where(Agent.tenant_id == tenant_id, Agent.id == agent_id, *when)
        .values(values or {"status": Agent.status}).returning(Agent),
        execution_options={"populate_existing": True},
    )


async def lock_agent_of_call(session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> uuid.UUID | None:
    """Lock the agent the call is assigned to right now (one UPDATE, so on SQLite the
    write lock comes first) and return its id; None when the call has no agent."""
    assigned = select(Call.agent_id).where(Call.tenant_id == tenant_id, Call.id == call_id).scalar_subquery()
    result = await session.execute(
        update(Agent).where(Agent.tenant_id == tenant_id, Agent.id == assigned).values(status=Agent.status).returning(Agent.id)
    )
    return result.scalar_one_or_none()


async def append_event(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    call_id: uuid.UUID,
    type: str,
    actor: str,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> CallEvent:
    """Append one event; the caller's transaction must hold the call row's lock.

    The call's last ``seq`` is read once per transaction (the lock keeps it
    ours) and the rows go in with the transaction's next flush, together.
    """
    numbers: dict[uuid.UUID, int] = session.info.setdefault(_LAST_SEQ, {})
    last = numbers.get(call_id)
    if last is None:
        last = await session.scalar(
            select(func.max(CallEvent.seq)).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id)
        ) or 0
    numbers[call_id] = last + 1
    event = CallEvent(tenant_id=tenant_id, call_id=call_id, seq=last + 1, at=at, type=type, actor=actor, data=dict(data or {}))
    session.add(event)
    # Reporting: the insert marks the call's fact to be recomputed (report_dirty_calls,
    # by a trigger: migration 0017).
    return event


# Per transaction: the last event number given to each call (kept in session.info).
_LAST_SEQ = "kefu.call_log.last_seq"


def new_call_log(session: AsyncSession, *, call_id: uuid.UUID) -> None:
    """The call was created in this transaction: its log starts at 1 (nothing to read)."""
    session.info.setdefault(_LAST_SEQ, {})[call_id] = 0


async def list_events(session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> list[CallEvent]:
    rows = await session.scalars(
        select(CallEvent).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id == call_id).order_by(CallEvent.seq)
    )
    return list(rows)


async def get_call(
    session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, own_agent_id: uuid.UUID | None = None
) -> Call:
    """The call, or 404.  With ``own_agent_id`` only that agent's calls are visible."""
    query = select(Call).where(Call.tenant_id == tenant_id, Call.id == call_id)
    if own_agent_id is not None:
        query = query.where(Call.agent_id == own_agent_id)
    call = await session.scalar(query)
    if call is None:
        raise not_found("call")
    return call


async def list_calls(
    session: AsyncSession, *, tenant_id: uuid.UUID, limit: int, offset: int, own_agent_id: uuid.UUID | None = None
) -> tuple[list[Call], int]:
    """One page of calls, newest first, and the total."""
    where = [Call.tenant_id == tenant_id]
    if own_agent_id is not None:
        where.append(Call.agent_id == own_agent_id)
    total = await session.scalar(select(func.count()).select_from(Call).where(*where)) or 0
    rows = await session.scalars(
        select(Call).where(*where).order_by(Call.started_at.desc(), Call.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def list_recordings(session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> list[Recording]:
    rows = await session.scalars(
        select(Recording).where(Recording.tenant_id == tenant_id, Recording.call_id == call_id).order_by(Recording.party)
    )
    return list(rows)


async def get_recording(
    session: AsyncSession, *, tenant_id: uuid.UUID, recording_id: uuid.UUID, own_agent_id: uuid.UUID | None = None
) -> Recording:
    query = select(Recording).where(Recording.tenant_id == tenant_id, Recording.id == recording_id)
    if own_agent_id is not None:
        # An agent hears its own calls, and the voicemails left for its queues.
        voicemail_of_my_queue = (
            select(Voicemail.id)
            .join(QueueMember, (QueueMember.tenant_id == Voicemail.tenant_id) & (QueueMember.queue_id == Voicemail.queue_id))
            .where(Voicemail.tenant_id == tenant_id, Voicemail.call_id == Recording.call_id, QueueMember.agent_id == own_agent_id)
        )
        query = query.join(Call, (Call.tenant_id == Recording.tenant_id) & (Call.id == Recording.call_id)).where(
            or_(Call.agent_id == own_agent_id, voicemail_of_my_queue.exists())
        )
    recording = await session.scalar(query)
    if recording is None:
        raise not_found("recording")
    return recording


@dataclass(frozen=True)
class CallDetail:
    """A call-detail record, derived from the call's events only."""

    call_id: uuid.UUID
    caller_name: str | None
    entry_point_id: uuid.UUID | None
    queue_id: uuid.UUID | None
    queue_name: str | None
    agent_id: uuid.UUID | None
    agent_name: str | None
    status: str
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    wait_s: float | None
    talk_s: float | None
    end_reason: str | None
    offers: int


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def derive_detail(call_id: uuid.UUID, events: list[CallEvent]) -> dict[str, Any]:
    """Fold the event log into the CDR's fields."""
    detail: dict[str, Any] = {
        "call_id": call_id, "caller_name": None, "entry_point_id": None, "queue_id": None, "agent_id": None,
        "status": "queued", "queued_at": None, "answered_at": None, "ended_at": None, "end_reason": None, "offers": 0,
    }
    for event in events:
        data = event.data or {}
        if event.type == "created":
            detail["caller_name"] = data.get("caller_name")
            detail["entry_point_id"] = _uuid(data.get("entry_point_id"))
        elif event.type == "queued":
            detail["queue_id"] = _uuid(data.get("queue_id"))
            detail["queued_at"] = detail["queued_at"] or event.at
        elif event.type == "offered":
            detail["offers"] += 1
            detail["status"] = "ringing"
        elif event.type == "requeued":
            detail["status"] = "queued"
        elif event.type == "answered":
            # The agent is whoever has the call last; the answer time is the first answer (a transferred call is answered again).
            detail["agent_id"] = _uuid(data.get("agent_id"))
            detail["answered_at"] = detail["answered_at"] or event.at
            detail["status"] = "connected"
        elif event.type == "transferred":
            if data.get("mode") in ("consultative", "conference"):
                detail["agent_id"] = _uuid(data.get("agent_id"))
            else:
                detail["status"] = "ringing" if data.get("agent_id") else "queued"
        elif event.type == "ended":
            detail["ended_at"] = event.at
            detail["end_reason"] = data.get("reason")
            detail["status"] = "ended"
    detail["wait_s"] = _seconds(detail["queued_at"], detail["answered_at"] or detail["ended_at"])
    detail["talk_s"] = _seconds(detail["answered_at"], detail["ended_at"])
    return detail


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


async def call_detail(
    session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, own_agent_id: uuid.UUID | None = None
) -> CallDetail:
    await get_call(session, tenant_id=tenant_id, call_id=call_id, own_agent_id=own_agent_id)
    fields = derive_detail(call_id, await list_events(session, tenant_id=tenant_id, call_id=call_id))
    queue_name = agent_name = None
    if fields["queue_id"] is not None:
        queue_name = await session.scalar(select(Queue.name).where(Queue.tenant_id == tenant_id, Queue.id == fields["queue_id"]))
    if fields["agent_id"] is not None:
        agent_name = await session.scalar(select(Agent.display_name).where(Agent.tenant_id == tenant_id, Agent.id == fields["agent_id"]))
    return CallDetail(queue_name=queue_name, agent_name=agent_name, **fields)
