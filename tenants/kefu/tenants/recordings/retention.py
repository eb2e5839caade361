"""Retention of recordings: how long a tenant keeps them (tenant-wide, and per queue
overriding it), and the purge that deletes what has expired.

A call's recordings expire ``retention_days`` after the call ended: its queue's
period when its queue has a row of its own (whose NULL means "keep forever"),
else the tenant's (no row or NULL: keep forever).  A call under legal hold never
expires.

The purge is a tenant job, ``purge_expired_recordings``, one batch of at most
``BATCH_SIZE`` calls per message (a larger backlog queues the next batch in the
same transaction), queued every ``interval`` by ``RecordingRetentionScheduler``
for each tenant whose policy expires anything.  For a batch it

1. locks the tenant's policy rows, then the expired calls' rows (UPDATEs; a
   hold being placed waits for the batch, or the batch for the hold) and drops
   those found held once locked;
2. deletes their files from the recording store (``<tenant>/<call>/``);
3. deletes their ``recordings`` rows, and writes one audit entry with the counts;
4. commits.

Files go before rows on purpose: a crash between 2 and 4 leaves rows whose files
are gone, which playback answers 404 ``recording_file_missing`` (never a 500) and
the next run deletes; the other order could leave files that no row names, which
no purge would ever find again.  The calls themselves stay (call-detail records,
reports); only their audio and its rows go.  Each message is idempotent: its key
is the tick and batch, and a file already deleted is not an error.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kefu.platform import audit
from kefu.platform.events import JobContext, enqueue, tenant_job
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.periodic import TenantJobScheduler
from kefu.platform.problems import Problem, not_found
from kefu.platform.settings import Settings
from kefu.tenants.models import Call, Queue, Recording
from kefu.tenants.recordings.models import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, LegalHold, RecordingPolicy
from kefu.tenants.recordings.schemas import QueueRetentionOut, RetentionOut
from kefu.tenants.recordings.store import store_for_settings

log = logging.getLogger(__name__)

BATCH_SIZE = 100
PURGE_ACTOR = "system"


def retention_interval_s(settings: Settings) -> int:
    """How often workers queue the purge (KEFU_RECORDING_RETENTION_INTERVAL)."""
    return settings.recording_retention_interval_s


# --- the policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    tenant_days: int | None
    # Queues with a row of their own: their period (None: keep forever).
    queue_days: dict[uuid.UUID, int | None]


async def load_retention(session: AsyncSession, *, tenant_id: uuid.UUID) -> Retention:
    rows = (await session.execute(
        select(RecordingPolicy.queue_id, RecordingPolicy.retention_days).where(RecordingPolicy.tenant_id == tenant_id)
    )).all()
    tenant_days = next((days for queue_id, days in rows if queue_id is None), None)
    return Retention(tenant_days, {queue_id: days for queue_id, days in rows if queue_id is not None})


def check_days(days: int | None) -> int | None:
    if days is not None and not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise Problem(400, "invalid_retention_days", f"retention_days must be {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS}, or null to keep forever")
    return days


async def retention_view(session: AsyncSession, *, tenant_id: uuid.UUID) -> RetentionOut:
    rows = (await session.execute(
        select(RecordingPolicy.queue_id, Queue.name, RecordingPolicy.retention_days)
        .outerjoin(Queue, (Queue.tenant_id == RecordingPolicy.tenant_id) & (Queue.id == RecordingPolicy.queue_id))
        .where(RecordingPolicy.tenant_id == tenant_id)
        .order_by(Queue.name)
    )).all()
    tenant_days = next((days for queue_id, _, days in rows if queue_id is None), None)
    queues = [QueueRetentionOut(queue_id, name, days) for queue_id, name, days in rows if queue_id is not None]
    return RetentionOut(tenant_days, queues)


async def _policy_row(session: AsyncSession, tenant_id: uuid.UUID, queue_id: uuid.UUID | None) -> RecordingPolicy | None:
    scope = RecordingPolicy.queue_id.is_(None) if queue_id is None else RecordingPolicy.queue_id == queue_id
    return await session.scalar(select(RecordingPolicy).where(RecordingPolicy.tenant_id == tenant_id, scope).with_for_update())


async def _set(
    session: AsyncSession, tenant_id: uuid.UUID, queue_id: uuid.UUID | None, days: int | None, actor: str, now: datetime
) -> None:
    row = await _policy_row(session, tenant_id, queue_id)
    previous = row.retention_days if row is not None else None
    if row is None:
        try:
            async with session.begin_nested():
                session.add(RecordingPolicy(tenant_id=tenant_id, queue_id=queue_id, retention_days=days, updated_at=now, updated_by=actor))
        except IntegrityError:  # a concurrent request created the row first: update it instead
            row = await _policy_row(session, tenant_id, queue_id)
            if row is None:
                raise
            previous = row.retention_days
    if row is not None:
        if row.retention_days == days:
            return
        row.retention_days, row.updated_at, row.updated_by = days, now, actor
        await session.flush()
    target = f"queue:{queue_id}" if queue_id is not None else f"tenant:{tenant_id}"
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="recording.retention_changed", target=target,
                       detail={"retention_days": days, "previous_retention_days": previous, "created": row is None}, at=now)


async def _require_queue(session: AsyncSession, tenant_id: uuid.UUID, queue_id: uuid.UUID) -> None:
    if await session.scalar(select(Queue.id).where(Queue.tenant_id == tenant_id, Queue.id == queue_id)) is None:
        raise not_found("queue")


async def set_tenant_retention(
    session: AsyncSession, *, tenant_id: uuid.UUID, retention_days: int | None, actor: str, now: datetime
) -> RetentionOut:
    await _set(session, tenant_id, None, check_days(retention_days), actor, now)
    return await retention_view(session, tenant_id=tenant_id)


async def set_queue_retention(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, retention_days: int | None, actor: str, now: datetime
) -> RetentionOut:
    await _require_queue(session, tenant_id, queue_id)
    await _set(session, tenant_id, queue_id, check_days(retention_days), actor, now)
    return await retention_view(session, tenant_id=tenant_id)


async def clear_queue_retention(session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: uuid.UUID, actor: str, now: datetime) -> RetentionOut:
    """The queue follows the tenant's period again (idempotent)."""
    await _require_queue(session, tenant_id, queue_id)
    row = await _policy_row(session, tenant_id, queue_id)
    if row is not None:
        await session.execute(delete(RecordingPolicy).where(RecordingPolicy.tenant_id == tenant_id, RecordingPolicy.id == row.id))
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="recording.retention_changed", target=f"queue:{queue_id}",
                           detail={"retention_days": "tenant", "previous_retention_days": row.retention_days}, at=now)
    return await retention_view(session, tenant_id=tenant_id)


# --- the purge ------------------------------------------------------------------------


def expired(call: type[Call], retention: Retention, now: datetime) -> ColumnElement[bool] | None:
    """SQL: ``call`` (Call or an alias) ended longer ago than its period; None when nothing expires."""
    clauses = [
        and_(call.queue_id == queue_id, call.ended_at < now - timedelta(days=days))
        for queue_id, days in retention.queue_days.items() if days is not None
    ]
    if retention.tenant_days is not None:
        overridden = list(retention.queue_days)
        follows_tenant = or_(call.queue_id.is_(None), call.queue_id.not_in(overridden)) if overridden else true()
        clauses.append(and_(follows_tenant, call.ended_at < now - timedelta(days=retention.tenant_days)))
    return or_(*clauses) if clauses else None


@dataclass(frozen=True)
class PurgeResult:
    calls: int
    recordings: int
    files: int
    # The batch was full: more may have expired.
    more: bool


async def purge_expired(
    session: AsyncSession, *, tenant_id: uuid.UUID, store: object, now: datetime, batch: int = 0, batch_size: int = BATCH_SIZE
) -> PurgeResult:
    """Delete the files and rows of one batch of expired, unheld calls' recordings (see the module's doc)."""
    # The first write: a policy change waits for this batch, and on SQLite the write lock is
    # taken before anything is read (a read first would fix a snapshot a concurrent commit
    # makes stale, and the batch would fail "database is locked").
    await session.execute(
        update(RecordingPolicy).where(RecordingPolicy.tenant_id == tenant_id).values(retention_days=RecordingPolicy.retention_days),
        execution_options={"synchronize_session": False},
    )
    retention = await load_retention(session, tenant_id=tenant_id)
    candidate = aliased(Call)
    condition = expired(candidate, retention, now)
    if condition is None:
        return PurgeResult(0, 0, 0, False)
    candidates = (
        select(candidate.id)
        .where(
            candidate.tenant_id == tenant_id, candidate.ended_at.is_not(None), condition,
            exists().where(Recording.tenant_id == tenant_id, Recording.call_id == candidate.id),
            ~exists().where(LegalHold.tenant_id == tenant_id, LegalHold.call_id == candidate.id),
        )
        .order_by(candidate.ended_at, candidate.id)
        .limit(batch_size)
    )
    locked = list(await session.scalars(
        update(Call).where(Call.tenant_id == tenant_id, Call.id.in_(candidates)).values(status=Call.status).returning(Call.id),
        execution_options={"synchronize_session": False},
    ))
    if not locked:
        return PurgeResult(0, 0, 0, False)
    # Read again now that the rows are locked: a hold committed while this waited for a lock counts.
    held = set(await session.scalars(select(LegalHold.call_id).where(LegalHold.tenant_id == tenant_id, LegalHold.call_id.in_(locked))))
    doomed = sorted((c for c in locked if c not in held), key=str)
    files = 0
    for call_id in doomed:
        files += await store.delete_prefix(f"{tenant_id}/{call_id}/")  # type: ignore[attr-defined]
    result = await session.execute(delete(Recording).where(Recording.tenant_id == tenant_id, Recording.call_id.in_(doomed)))
    purged = PurgeResult(len(doomed), result.rowcount or 0, files, len(locked) >= batch_size)
    if doomed:
        await audit.record(
            session, tenant_id=tenant_id, actor=PURGE_ACTOR, action="recording.purged", target=f"tenant:{tenant_id}",
            detail={
                "calls": purged.calls, "recordings": purged.recordings, "files": files, "batch": batch,
                "call_ids": [str(c) for c in doomed],
                "retention_days": retention.tenant_days,
                "queue_retention_days": {str(q): d for q, d in retention.queue_days.items()},
            },
            at=now,
        )
    log.info("recording retention: tenant %s batch %s purged %s calls (%s files)", tenant_id, batch, purged.calls, files)
    return purged


@tenant_job(
    name="kefu.tenants.recordings.purge_expired_recordings",
    key=lambda kw: f"recording-retention:{kw['tick']}:{kw['batch']}",
    max_retries=5,
)
async def purge_expired_recordings(
    job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, tick: str, now: str, batch: int, batch_size: int = BATCH_SIZE
) -> None:
    """One batch; ``now`` is the tick's moment, so retries and later batches use the same cut-off."""
    store = store_for_settings(job.settings)
    result = await purge_expired(session, tenant_id=tenant_id, store=store, now=datetime.fromisoformat(now), batch=batch, batch_size=batch_size)
    if result.more:
        await enqueue(session, purge_expired_recordings, tenant_id=tenant_id, tick=tick, now=now, batch=batch + 1, batch_size=batch_size)


class RecordingRetentionScheduler(TenantJobScheduler):
    """Every interval (worker processes): one purge per tenant whose policy expires anything."""

    name = "recording retention scheduler"
    reason = "scheduled recording retention"

    async def tenants(self, session: AsyncSession) -> list[uuid.UUID]:
        return list(await session.scalars(
            select(RecordingPolicy.tenant_id).distinct()
            .join(Tenant, Tenant.id == RecordingPolicy.tenant_id)
            .where(RecordingPolicy.retention_days.is_not(None), Tenant.status != TenantStatus.CLOSED)
        ))

    async def enqueue(self, session: AsyncSession, tenant_id: uuid.UUID, *, tick: str, now: datetime) -> None:
        await enqueue(session, purge_expired_recordings, tenant_id=tenant_id, tick=tick, now=now.isoformat(), batch=0)
