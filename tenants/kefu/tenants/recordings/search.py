"""The recordings search: calls of one tenant that have recordings, newest first.

Filters combine with AND: the caller (a substring of its name or customer
reference, case-insensitive), agent, queue, start time range, disposition code,
talk time range (answered to ended, whole seconds; 0 for a call never answered),
QA status (through ``hooks.qa_status_filters``) and legal hold.  Pages are keyset
pages: ``next_cursor`` names the last call shown, so a page never repeats or
skips a call when newer calls arrive meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, cast, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.problems import Problem
from kefu.tenants.models import Agent, Call, Queue, Recording
from kefu.tenants.recordings.hooks import QA_STATUSES, qa_status_filters
from kefu.tenants.recordings.models import LegalHold
from kefu.tenants.recordings.schemas import NamedRef, PartyRecordingOut, RecordedCallOut
from kefu.tenants.recordings.serials import call_serial

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_TEXT = 200


@dataclass(frozen=True)
class SearchFilters:
    caller: str | None = None
    agent_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    disposition: str | None = None
    min_talk_s: int | None = None
    max_talk_s: int | None = None
    qa_status: str | None = None
    held: bool | None = None


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def checked_filters(filters: SearchFilters) -> SearchFilters:
    """The filters with times in UTC, or a 400 problem naming what is wrong."""
    started_from, started_to = _utc(filters.started_from), _utc(filters.started_to)
    if started_from is not None and started_to is not None and started_from > started_to:
        raise Problem(400, "invalid_time_range", "started_from must not be after started_to")
    for name in ("min_talk_s", "max_talk_s"):
        value = getattr(filters, name)
        if value is not None and value < 0:
            raise Problem(400, "invalid_duration_range", f"{name} must not be negative")
    if filters.min_talk_s is not None and filters.max_talk_s is not None and filters.min_talk_s > filters.max_talk_s:
        raise Problem(400, "invalid_duration_range", "min_talk_s must not be above max_talk_s")
    for name in ("caller", "disposition"):
        value = getattr(filters, name)
        if value is not None and not 1 <= len(value) <= MAX_TEXT:
            raise Problem(400, "invalid_filter", f"{name} must have 1 to {MAX_TEXT} characters")
    if filters.qa_status is not None:
        if filters.qa_status not in QA_STATUSES:
            raise Problem(400, "invalid_qa_status", f"qa_status must be one of {', '.join(QA_STATUSES)}")
        if filters.qa_status not in qa_status_filters:
            raise Problem(400, "qa_status_unavailable", "filtering by QA status is not available (quality assurance is not installed)")
    return replace(filters, started_from=started_from, started_to=started_to)


def encode_cursor(started_at: datetime, call_id: uuid.UUID) -> str:
    raw = json.dumps([started_at.astimezone(UTC).isoformat(), str(call_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, call_id = json.loads(raw)
        moment = datetime.fromisoformat(started)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, uuid.UUID(call_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise Problem(400, "invalid_cursor", "the cursor is not one this API gave out") from None


def talk_seconds(dialect: str) -> ColumnElement[int]:
    """Whole seconds from answer to end (NULL when either is missing), in SQL."""
    if dialect == "postgresql":
        seconds: Any = func.floor(func.extract("epoch", Call.ended_at - Call.answered_at))
    else:  # SQLite: julianday is a float of days; round away its last bits before truncating
        seconds = func.round((func.julianday(Call.ended_at) - func.julianday(Call.answered_at)) * 86400.0, 3)
    return cast(seconds, Integer)


def talk_s_of(call: Call) -> int:
    if call.answered_at is None or call.ended_at is None:
        return 0
    return max(0, int((call.ended_at - call.answered_at).total_seconds()))


async def search_recorded_calls(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: SearchFilters, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> tuple[list[RecordedCallOut], str | None]:
    """One page (``limit`` calls, newest first) and the cursor of the next, or None."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, "invalid_limit", f"limit must be 1 to {MAX_LIMIT}")
    filters = checked_filters(filters)
    dialect = (await session.connection()).dialect.name
    has_recordings = exists().where(Recording.tenant_id == tenant_id, Recording.call_id == Call.id)
    query = (
        select(Call, Agent.display_name, Queue.name, LegalHold.id)
        .outerjoin(Agent, (Agent.tenant_id == Call.tenant_id) & (Agent.id == Call.agent_id))
        .outerjoin(Queue, (Queue.tenant_id == Call.tenant_id) & (Queue.id == Call.queue_id))
        .outerjoin(LegalHold, (LegalHold.tenant_id == Call.tenant_id) & (LegalHold.call_id == Call.id))
        .where(Call.tenant_id == tenant_id, has_recordings)
    )
    if filters.caller is not None:
        needle = filters.caller.lower()
        query = query.where(or_(
            func.lower(Call.caller_name).contains(needle, autoescape=True), func.lower(Call.caller_ref).contains(needle, autoescape=True)
        ))
    if filters.agent_id is not None:
        query = query.where(Call.agent_id == filters.agent_id)
    if filters.queue_id is not None:
        query = query.where(Call.queue_id == filters.queue_id)
    if filters.started_from is not None:
        query = query.where(Call.started_at >= filters.started_from)
    if filters.started_to is not None:
        query = query.where(Call.started_at <= filters.started_to)
    if filters.disposition is not None:
        query = query.where(Call.disposition_code == filters.disposition)
    if filters.min_talk_s is not None or filters.max_talk_s is not None:
        talk = func.coalesce(talk_seconds(dialect), 0)
        if filters.min_talk_s is not None:
            query = query.where(talk >= filters.min_talk_s)
        if filters.max_talk_s is not None:
            query = query.where(talk <= filters.max_talk_s)
    if filters.qa_status is not None:
        query = query.where(qa_status_filters[filters.qa_status](tenant_id))
    if filters.held is not None:
        query = query.where(LegalHold.id.is_not(None) if filters.held else LegalHold.id.is_(None))
    if cursor is not None:
        started_at, call_id = decode_cursor(cursor)
        query = query.where(or_(Call.started_at < started_at, and_(Call.started_at == started_at, Call.id < call_id)))
    rows = (await session.execute(query.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1))).all()
    more, rows = len(rows) > limit, rows[:limit]
    parties = await _parties(session, tenant_id, [row[0].id for row in rows])
    items = [
        RecordedCallOut(
            call_id=call.id, serial=call_serial(call), caller_name=call.caller_name, caller_ref=call.caller_ref,
            agent=NamedRef(call.agent_id, agent_name) if call.agent_id else None,
            queue=NamedRef(call.queue_id, queue_name) if call.queue_id else None,
            started_at=call.started_at, answered_at=call.answered_at, ended_at=call.ended_at, talk_s=talk_s_of(call),
            disposition_code=call.disposition_code, held=hold_id is not None, parties=parties[call.id],
        )
        for call, agent_name, queue_name, hold_id in rows
    ]
    next_cursor = encode_cursor(rows[-1][0].started_at, rows[-1][0].id) if more else None
    return items, next_cursor


async def _parties(session: AsyncSession, tenant_id: uuid.UUID, call_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PartyRecordingOut]]:
    found: dict[uuid.UUID, list[PartyRecordingOut]] = defaultdict(list)
    if not call_ids:
        return found
    rows = await session.scalars(
        select(Recording).where(Recording.tenant_id == tenant_id, Recording.call_id.in_(call_ids)).order_by(Recording.call_id, Recording.party)
    )
    for r in rows:
        found[r.call_id].append(PartyRecordingOut(r.party, r.id, r.media_type, r.duration_ms, r.size_bytes))
    return found
