"""Today's service figures per queue, live (the supervision console and the wallboard).

Read from the ``calls`` rows of calls that entered the queue since the start of the
tenant's day (its time zone), with the same definitions as the historical reports
(docs/reports.md): service level = answered within the queue's threshold of entering
it ÷ (answered + abandoned − short abandons); callbacks are left out; a short abandon
is a caller who left at or under ``SHORT_ABANDON_S`` after entering the queue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.models import Tenant
from kefu.tenants.models import Call, Queue
from kefu.tenants.reports.facts import CALLER_LEFT_REASONS, DEFAULT_SERVICE_LEVEL_S, SHORT_ABANDON_S


@dataclass(frozen=True)
class TodayFigures:
    target_s: int
    answered: int
    answered_within: int
    abandoned: int
    short_abandoned: int
    # answered + abandoned − short abandons: the service level's denominator.
    offered: int
    service_level_percent: float | None


async def tenant_zone(session: AsyncSession, *, tenant_id: uuid.UUID) -> ZoneInfo:
    """The tenant's time zone (``tenants.time_zone``; UTC when unknown)."""
    name = await session.scalar(select(Tenant.time_zone).where(Tenant.id == tenant_id)) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def day_start(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime) -> datetime:
    """The start of the tenant's current day (its time zone), as a moment in ``now``'s zone."""
    zone = await tenant_zone(session, tenant_id=tenant_id)
    return datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone).astimezone(now.tzinfo)


async def today_by_queue(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_ids: list[uuid.UUID], now: datetime,
) -> dict[uuid.UUID, TodayFigures]:
    if not queue_ids:
        return {}
    targets = dict((await session.execute(
        select(Queue.id, Queue.service_level_s).where(Queue.tenant_id == tenant_id, Queue.id.in_(queue_ids))
    )).all())
    start = await day_start(session, tenant_id=tenant_id, now=now)
    counts = {q: [0, 0, 0, 0] for q in queue_ids}  # answered, within, abandoned, short
    for queue_id, entered, answered_at, ended_at, reason, callback in await session.execute(
        select(Call.queue_id, Call.queue_entered_at, Call.answered_at, Call.ended_at, Call.end_reason, Call.callback_requested_at)
        .where(Call.tenant_id == tenant_id, Call.queue_id.in_(queue_ids), Call.queue_entered_at >= start)
    ):
        if callback is not None or entered is None:
            continue
        row = counts[queue_id]
        target = targets.get(queue_id) or DEFAULT_SERVICE_LEVEL_S
        if answered_at is not None:
            row[0] += 1
            row[1] += int((answered_at - entered).total_seconds() <= target)
        elif ended_at is not None and reason in CALLER_LEFT_REASONS:
            row[2] += 1
            row[3] += int((ended_at - entered).total_seconds() <= SHORT_ABANDON_S)
    out = {}
    for queue_id, (answered, within, abandoned, short) in counts.items():
        offered = answered + abandoned - short
        out[queue_id] = TodayFigures(
            target_s=targets.get(queue_id) or DEFAULT_SERVICE_LEVEL_S, answered=answered, answered_within=within,
            abandoned=abandoned, short_abandoned=short, offered=offered,
            service_level_percent=round(100 * within / offered, 1) if offered else None,
        )
    return out
