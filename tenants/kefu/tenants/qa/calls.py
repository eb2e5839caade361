"""Calls as quality assurance sees them: their serial numbers, and the checks a set of calls
passes before it is evaluated, calibrated or filed in the library (docs/qa.md).

A call's **serial number** is derived, never stored on the call:
``YYYYMMDDHHMMSS-<first 8 hex digits of the call id>`` from the call's ``started_at`` in
UTC, e.g. ``20261123090000-1a2b3c4d``.  Serials sort by start time (to the second), and the
id part tells two calls of the same second apart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.problems import Problem, not_found
from kefu.tenants.models import Agent, Call, Queue, Recording
from kefu.tenants.recordings.serials import serial_of

MAX_CALLS_PER_EVALUATION = 20


def call_serial(call_id: uuid.UUID, started_at: datetime) -> str:
    """The serial number of a call (the seeds' 流水号): start time in UTC and the id's first
    8 hex digits, as recording management shows it (one definition: kefu.tenants.recordings.serials)."""
    return serial_of(call_id, started_at)


def talk_seconds(call: Call) -> int:
    """Answered -> ended, whole seconds (0 for a call never answered)."""
    if call.answered_at is None or call.ended_at is None:
        return 0
    return max(0, int((call.ended_at - call.answered_at).total_seconds()))


@dataclass(frozen=True)
class CoveredCalls:
    """Calls checked for an evaluation: earliest first, one agent, all ended and recorded."""

    calls: list[Call]
    agent: Agent
    queue_id: uuid.UUID | None
    queue_name: str | None

    @property
    def start_serial(self) -> str:
        return call_serial(self.calls[0].id, self.calls[0].started_at)

    @property
    def end_serial(self) -> str:
        return call_serial(self.calls[-1].id, self.calls[-1].started_at)

    @property
    def duration_s(self) -> int:
        return sum(talk_seconds(c) for c in self.calls)


async def recorded_call_ids(session: AsyncSession, *, tenant_id: uuid.UUID, call_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(Recording.call_id).where(Recording.tenant_id == tenant_id, Recording.call_id.in_(call_ids)).group_by(Recording.call_id)
    )
    return set(rows)


async def covered_calls(session: AsyncSession, *, tenant_id: uuid.UUID, call_ids: list[uuid.UUID]) -> CoveredCalls:
    """The calls an evaluation may cover, or the problem: 404 for a missing or foreign call
    (the same answer), 409 ``call_not_ended``, ``call_not_answered``, ``calls_of_different_agents``,
    ``calls_of_different_callers`` (both name a caller reference and they differ) or
    ``call_not_recorded``."""
    unique = list(dict.fromkeys(call_ids))
    if not unique or len(unique) > MAX_CALLS_PER_EVALUATION:
        raise Problem(400, "invalid_call_ids", f"an evaluation covers 1 to {MAX_CALLS_PER_EVALUATION} distinct calls")
    rows = {c.id: c for c in await session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.id.in_(unique)))}
    if len(rows) != len(unique):
        raise not_found("call")
    calls = sorted(rows.values(), key=lambda c: (c.started_at, c.id))
    for call in calls:
        if call.status != "ended":
            raise Problem(409, "call_not_ended", f"the call {call_serial(call.id, call.started_at)} has not ended yet", call_id=str(call.id))
        if call.agent_id is None or call.answered_at is None:
            raise Problem(409, "call_not_answered", f"the call {call_serial(call.id, call.started_at)} was never answered by an agent",
                          call_id=str(call.id))
    if len({c.agent_id for c in calls}) > 1:
        raise Problem(409, "calls_of_different_agents", "the calls of one evaluation must have been answered by the same agent")
    if len({c.caller_ref for c in calls if c.caller_ref}) > 1:
        raise Problem(409, "calls_of_different_callers", "the calls of one evaluation must be of the same contact")
    recorded = await recorded_call_ids(session, tenant_id=tenant_id, call_ids=unique)
    for call in calls:
        if call.id not in recorded:
            raise Problem(409, "call_not_recorded", f"the call {call_serial(call.id, call.started_at)} has no recording to evaluate",
                          call_id=str(call.id))
    agent = await session.scalar(select(Agent).where(Agent.tenant_id == tenant_id, Agent.id == calls[0].agent_id))
    assert agent is not None  # the composite foreign key keeps the call's agent in the tenant
    queue_id = calls[0].queue_id
    queue_name = None
    if queue_id is not None:
        queue_name = await session.scalar(select(Queue.name).where(Queue.tenant_id == tenant_id, Queue.id == queue_id))
    return CoveredCalls(calls, agent, queue_id, queue_name)

