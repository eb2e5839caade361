"""Keeping the call facts and the 15-minute rollups up to date, and rebuilding them.

**Calls.**  Every transaction that appends to a call's log also bumps the call's
``report_dirty_calls`` marker (kefu.tenants.reports.marks).  ``update_rollups``
reads up to ``BATCH_SIZE`` markers with their versions, folds each call's log into
its fact (kefu.tenants.reports.facts), applies (new − old) counters to the rollup
rows, stores the fact with its counters, and deletes each marker *at the version it
read*: an append that commits meanwhile has bumped (or re-created) the marker, so
its call is recomputed on the next run whatever order transactions commit in.  On
PostgreSQL the markers are read ``FOR UPDATE SKIP LOCKED``: a marker held by an
append transaction still open is left for the next run, and an append that comes
to a marker this run holds waits for it and then writes a fresh one.

**Agent time.**  ``report_state.agent_time_through`` says up to which bucket
boundary agent time is rolled up.  Each run extends it to the last whole bucket
before ``now``: for every agent with a presence log or a shift, the buckets from
``through`` (or, for an agent whose ``report_dirty_agents`` marker says its log got
rows earlier, from that row's bucket) are recomputed whole and replace what the
agent rows held.

**Rebuild** deletes the tenant's facts and rollups and recomputes everything from
the logs; the numbers are the same as incremental upkeep's (tested).

Each run starts with a write (``write_first`` on SQLite, then the tenant's
``report_state`` row, which serialises runs of one tenant on PostgreSQL).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.db.session import write_first
from kefu.platform.events import JobContext, enqueue, tenant_job
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.periodic import TenantJobScheduler
from kefu.platform.settings import Settings
from kefu.tenants.models import (
    Agent,
    AgentEvent,
    AgentShift,
    Call,
    CallEvent,
    Queue,
    ReportCallFact,
    ReportDirtyAgent,
    ReportDirtyCall,
    ReportRollup,
    ReportState,
    Schedule,
)
from kefu.tenants.reports.agenttime import bucket_times
from kefu.tenants.reports.facts import AGENT_TIME_COUNTERS, CALL_COUNTERS, bucket_of, derive_fact
from kefu.tenants.reports.marks import dialect_insert

log = logging.getLogger(__name__)

BATCH_SIZE = 500


def rollup_interval_s(settings: Settings) -> int:
    """How often workers queue the upkeep (KEFU_REPORTS_ROLLUP_INTERVAL)."""
    return settings.reports_rollup_interval_s


@dataclass(frozen=True)
class UpkeepResult:
    calls: int
    agents: int
    more: bool


async def _lock_state(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> ReportState:
    await write_first(session)
    insert = dialect_insert(session, ReportState)
    await session.execute(
        insert.values(tenant_id=tenant_id, id=uuid.uuid4(), agent_time_through=None, updated_at=now)
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    state = await session.scalar(
        update(ReportState).where(ReportState.tenant_id == tenant_id).values(updated_at=now).returning(ReportState),
        execution_options={"populate_existing": True},
    )
    assert state is not None
    return state


async def _apply(session: AsyncSession, tenant_id: uuid.UUID, deltas: dict[tuple[str, str, str], dict[str, int]]) -> None:
    """Add counters to rollup rows (created at zero when missing)."""
    for (dimension, key, bucket), counters in sorted(deltas.items()):
        counters = {name: value for name, value in counters.items() if value}
        if not counters:
            continue
        insert = dialect_insert(session, ReportRollup)
        await session.execute(
            insert.values(tenant_id=tenant_id, id=uuid.uuid4(), dimension=dimension, key_id=uuid.UUID(key),
                          bucket_start=datetime.fromisoformat(bucket), **{c: counters.get(c, 0) for c in CALL_COUNTERS + AGENT_TIME_COUNTERS})
            .on_conflict_do_update(
                index_elements=["tenant_id", "dimension", "key_id", "bucket_start"],
                set_={name: getattr(ReportRollup, name) + value for name, value in counters.items()},
            )
        )


async def _recompute_calls(session: AsyncSession, tenant_id: uuid.UUID, call_ids: list[uuid.UUID]) -> int:
    """Recompute the facts of ``call_ids`` and move the rollups by the difference."""
    if not call_ids:
        return 0
    service_levels = dict((await session.execute(select(Queue.id, Queue.service_level_s).where(Queue.tenant_id == tenant_id))).all())
    teams = dict((await session.execute(select(Agent.id, Agent.team_id).where(Agent.tenant_id == tenant_id))).all())
    deltas: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    count = 0
    for start in range(0, len(call_ids), 200):
        chunk = call_ids[start:start + 200]
        calls = {c.id: c for c in await session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.id.in_(chunk)))}
        events: dict[uuid.UUID, list[CallEvent]] = defaultdict(list)
        for event in await session.scalars(
            select(CallEvent).where(CallEvent.tenant_id == tenant_id, CallEvent.call_id.in_(chunk)).order_by(CallEvent.call_id, CallEvent.seq)
        ):
            events[event.call_id].append(event)
        old_facts = {f.call_id: f for f in await session.scalars(
            select(ReportCallFact).where(ReportCallFact.tenant_id == tenant_id, ReportCallFact.call_id.in_(chunk))
        )}
        for call_id in chunk:
            call = calls.get(call_id)
            fact = None if call is None else derive_fact(
                call_id=call_id, started_at=call.started_at, caller=call.caller_ref or call.caller_name,
                events=events.get(call_id, []), service_levels=service_levels, teams=teams,
            )
            old = old_facts.get(call_id)
            new_rows = fact.contributions(tenant_id) if fact is not None else []
            for sign, rows in ((-1, old.contributions if old is not None else []), (1, new_rows)):
                for row in rows:
                    target = deltas[(row["d"], row["k"], row["b"])]
                    for name in CALL_COUNTERS:
                        if name in row:
                            target[name] += sign * int(row[name])
            if fact is None:
                if old is not None:
                    await session.delete(old)
                continue
            values = dict(
                bucket_start=fact.bucket_start, started_at=fact.started_at, caller=fact.caller, queue_id=fact.queue_id,
                outcome=fact.outcome, end_reason=fact.end_reason, callback=fact.callback, ivr_entered=fact.ivr_entered,
                service_level_s=fact.service_level_s, wait_ms=fact.wait_ms, talk_ms=fact.talk_ms, hold_ms=fact.hold_ms,
                acw_ms=fact.acw_ms, transferred=fact.transferred, first_call_resolution=fact.first_call_resolution,
                segments=fact.segments_json(), contributions=new_rows,
            )
            if old is None:
                session.add(ReportCallFact(tenant_id=tenant_id, call_id=call_id, **values))
            else:
                for name, value in values.items():
                    setattr(old, name, value)
            count += 1
    await session.flush()
    await _apply(session, tenant_id, deltas)
    return count


async def _agent_time(session: AsyncSession, tenant_id: uuid.UUID, state: ReportState, now: datetime) -> int:
    """Extend agent time to the last whole bucket before ``now`` (see the module's doc)."""
    new_through = bucket_of(now)
    # Locked as read, skipping markers of presence changes still being written (as for calls):
    # such an agent's marker keeps its ``since`` and the next run goes back to it.
    markers = (await session.execute(
        select(ReportDirtyAgent.agent_id, ReportDirtyAgent.since, ReportDirtyAgent.version)
        .where(ReportDirtyAgent.tenant_id == tenant_id).with_for_update(skip_locked=True)
    )).all()
    dirty = {agent_id: since for agent_id, since, _ in markers}
    versions = {agent_id: version for agent_id, _, version in markers}
    shift_rows: dict[uuid.UUID, list[AgentShift]] = defaultdict(list)
    for row in await session.scalars(select(AgentShift).where(AgentShift.tenant_id == tenant_id).order_by(AgentShift.valid_from, AgentShift.id)):
        shift_rows[row.agent_id].append(row)
    schedules = {s.id: s for s in await session.scalars(select(Schedule).where(Schedule.tenant_id == tenant_id))}
    through = state.agent_time_through
    if through is None:
        earliest = [m for m in (
            await session.scalar(select(func.min(AgentEvent.at)).where(AgentEvent.tenant_id == tenant_id)),
            min((rows[0].valid_from for rows in shift_rows.values()), default=None),
        ) if m is not None]
        through = bucket_of(min(earliest)) if earliest else new_through
    agent_ids = set(await session.scalars(select(AgentEvent.agent_id).where(AgentEvent.tenant_id == tenant_id).distinct())) | set(shift_rows)
    done = 0
    for agent_id in sorted(agent_ids, key=str):
        start = min(through, bucket_of(dirty[agent_id])) if agent_id in dirty else through
        if start >= new_through:
            continue
        initial = await session.scalar(
            select(AgentEvent.status).where(AgentEvent.tenant_id == tenant_id, AgentEvent.agent_id == agent_id, AgentEvent.at < start)
            .order_by(AgentEvent.at.desc(), AgentEvent.id.desc()).limit(1)
        )
        events = [(at, status) for at, status in (await session.execute(
            select(AgentEvent.at, AgentEvent.status).where(
                AgentEvent.tenant_id == tenant_id, AgentEvent.agent_id == agent_id, AgentEvent.at >= start, AgentEvent.at < new_through,
            ).order_by(AgentEvent.at, AgentEvent.id)
        ))]
        rows = shift_rows.get(agent_id, [])
        shifts = [
            (row.valid_from, rows[i + 1].valid_from if i + 1 < len(rows) else None, schedules.get(row.schedule_id) if row.schedule_id else None)
            for i, row in enumerate(rows)
        ]
        times = bucket_times(initial=initial, events=events, start=start, end=new_through, shifts=shifts)
        where = [ReportRollup.tenant_id == tenant_id, ReportRollup.dimension == "agent", ReportRollup.key_id == agent_id,
                 ReportRollup.bucket_start >= start, ReportRollup.bucket_start < new_through]
        await session.execute(update(ReportRollup).where(*where).values(**{c: 0 for c in AGENT_TIME_COUNTERS}),
                              execution_options={"synchronize_session": False})
        for bucket, counters in sorted(times.items()):
            insert = dialect_insert(session, ReportRollup)
            await session.execute(
                insert.values(tenant_id=tenant_id, id=uuid.uuid4(), dimension="agent", key_id=agent_id, bucket_start=bucket,
                              **{c: 0 for c in CALL_COUNTERS}, **{c: counters.get(c, 0) for c in AGENT_TIME_COUNTERS})
                .on_conflict_do_update(
                    index_elements=["tenant_id", "dimension", "key_id", "bucket_start"],
                    set_={c: counters.get(c, 0) for c in AGENT_TIME_COUNTERS},
                )
            )
        done += 1
    if versions:
        await session.execute(delete(ReportDirtyAgent).where(
            ReportDirtyAgent.tenant_id == tenant_id,
            or_(*[and_(ReportDirtyAgent.agent_id == a, ReportDirtyAgent.version == v) for a, v in versions.items()]),
        ))
    state.agent_time_through = max(new_through, through)
    return done


async def update_rollups(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime, batch_size: int = BATCH_SIZE) -> UpkeepResult:
    """One incremental run (see the module's doc)."""
    state = await _lock_state(session, tenant_id, now)
    # Locked as read (PostgreSQL), skipping markers an open append transaction holds: that
    # call waits for the next run, and no append ever waits for a row this run would then
    # wait for (no deadlock).  SQLite: the run holds the database's write lock already.
    dirty = (await session.execute(
        select(ReportDirtyCall.call_id, ReportDirtyCall.version).where(ReportDirtyCall.tenant_id == tenant_id)
        .order_by(ReportDirtyCall.call_id).limit(batch_size).with_for_update(skip_locked=True)
    )).all()
    calls = await _recompute_calls(session, tenant_id, [call_id for call_id, _ in dirty])
    if dirty:
        await session.execute(delete(ReportDirtyCall).where(
            ReportDirtyCall.tenant_id == tenant_id,
            tuple_(ReportDirtyCall.call_id, ReportDirtyCall.version).in_([tuple(row) for row in dirty]),
        ))
    agents = await _agent_time(session, tenant_id, state, now)
    return UpkeepResult(calls, agents, len(dirty) >= batch_size)


async def rebuild(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime) -> UpkeepResult:
    """Recompute every fact and rollup of the tenant from the call and presence logs."""
    state = await _lock_state(session, tenant_id, now)
    dirty_calls = (await session.execute(
        select(ReportDirtyCall.call_id, ReportDirtyCall.version).where(ReportDirtyCall.tenant_id == tenant_id)
    )).all()
    await session.execute(delete(ReportRollup).where(ReportRollup.tenant_id == tenant_id))
    await session.execute(delete(ReportCallFact).where(ReportCallFact.tenant_id == tenant_id))
    state.agent_time_through = None
    call_ids = list(await session.scalars(select(Call.id).where(Call.tenant_id == tenant_id, Call.ended_at.is_not(None)).order_by(Call.id)))
    calls = await _recompute_calls(session, tenant_id, call_ids)
    if dirty_calls:
        await session.execute(delete(ReportDirtyCall).where(
            ReportDirtyCall.tenant_id == tenant_id,
            tuple_(ReportDirtyCall.call_id, ReportDirtyCall.version).in_([tuple(row) for row in dirty_calls]),
        ))
    agents = await _agent_time(session, tenant_id, state, now)
    return UpkeepResult(calls, agents, False)


@tenant_job(name="kefu.tenants.reports.update_report_rollups", key=lambda kw: f"report-rollups:{kw['tick']}:{kw['batch']}", max_retries=5)
async def update_report_rollups(
    job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, tick: str, now: str, batch: int = 0, batch_size: int = BATCH_SIZE,
) -> None:
    """One batch of the upkeep; a full batch queues the next in the same transaction."""
    result = await update_rollups(session, tenant_id=tenant_id, now=datetime.fromisoformat(now), batch_size=batch_size)
    if result.more:
        await enqueue(session, update_report_rollups, tenant_id=tenant_id, tick=tick, now=now, batch=batch + 1, batch_size=batch_size)


@tenant_job(name="kefu.tenants.reports.rebuild_reports", key=lambda kw: f"report-rebuild:{kw['request_id']}", max_retries=3)
async def rebuild_reports(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, request_id: str, actor: str) -> None:
    now = utcnow()
    result = await rebuild(session, tenant_id=tenant_id, now=now)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="reports.rebuilt", target=f"tenant:{tenant_id}",
                       detail={"request_id": request_id, "calls": result.calls, "agents": result.agents}, at=now)


class ReportRollupScheduler(TenantJobScheduler):
    """Every interval (worker processes): one upkeep run per tenant that is not closed."""

    name = "report rollup scheduler"
    reason = "scheduled report rollups"

    async def tenants(self, session: AsyncSession) -> list[uuid.UUID]:
        return list(await session.scalars(select(Tenant.id).where(Tenant.status != TenantStatus.CLOSED).order_by(Tenant.id)))

    async def enqueue(self, session: AsyncSession, tenant_id: uuid.UUID, *, tick: str, now: datetime) -> None:
        await enqueue(session, update_report_rollups, tenant_id=tenant_id, tick=tick, now=now.isoformat(), batch=0)
