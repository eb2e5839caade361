"""Sampling policies and the reviewers' work lists (docs/qa.md).

A policy picks up to ``calls_per_agent`` calls per agent per period (day, week or month
in the tenant's time zone) among the period's ended, answered calls not yet evaluated that pass its filters
(talk time at least ``min_duration_s``, the policy's queues, its disposition codes, with a
recording), and gives each to the next of its reviewers in turn (round-robin).

Which calls: candidates are ordered by ``sha256(seed:call id)`` — random across calls,
and reproducible for a given seed.  Filling is idempotent: the unique key (policy,
period, call) and the per-agent count of what the period already holds mean a second
run adds nothing unless new calls have come in for an agent still below its quota.  The
policy row is locked while it is filled, so concurrent runs are serialised.

``fill_work_lists`` is the Dramatiq job (one per tenant per tick, queued by
``SamplingScheduler`` in worker processes); ``POST /api/v1/qa/sampling-policies/{id}/run``
fills one policy at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.events import JobContext, enqueue, tenant_job
from kefu.platform.identity.permissions import permissions_for
from kefu.platform.models import Membership, Tenant, TenantStatus, User
from kefu.platform.periodic import TenantJobScheduler
from kefu.platform.problems import Problem, check_text, not_found
from kefu.tenants.models import Agent, Call, Queue, Recording
from kefu.tenants.qa.calls import talk_seconds
from kefu.tenants.qa.evaluations import check_qa_type, create_evaluation
from kefu.tenants.qa.models import (
    QaEvaluation,
    QaEvaluationCall,
    QaSamplingPolicy,
    QaSamplingPolicyQueue,
    QaSamplingPolicyReviewer,
    QaWorkItem,
)
from kefu.tenants.qa.scorecards import latest_version

PERIODS = ("day", "week", "month")
MAX_REVIEWERS = 50
MAX_QUEUES = 100
MAX_DISPOSITIONS = 50


# --- periods --------------------------------------------------------------------------------


def period_bounds(at: datetime, period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The [start, end) of the day, week (Monday first) or month holding ``at``, in ``zone``, as UTC."""
    local = at.astimezone(zone).date()
    if period == "day":
        first, after = local, local + timedelta(days=1)
    elif period == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    # Built from the calendar date, so a DST change inside the period keeps midnight at midnight.
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end = datetime(after.year, after.month, after.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


async def tenant_zone(session: AsyncSession, *, tenant_id: uuid.UUID) -> ZoneInfo:
    name = await session.scalar(select(Tenant.time_zone).where(Tenant.id == tenant_id))
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# --- policies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyFields:
    """A policy's settings as given (None: unchanged when updating)."""

    name: str | None = None
    scorecard_id: uuid.UUID | None = None
    qa_type: str | None = None
    calls_per_agent: int | None = None
    period: str | None = None
    min_duration_s: int | None = None
    queue_ids: list[uuid.UUID] | None = None
    disposition_codes: list[str] | None = None
    recorded_only: bool | None = None
    reviewer_ids: list[uuid.UUID] | None = None
    seed: int | None = None
    active: bool | None = None


async def check_reviewers(session: AsyncSession, *, tenant_id: uuid.UUID, reviewer_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Distinct users of the tenant who may evaluate (404 for an unknown or foreign user, like a missing one)."""
    unique = list(dict.fromkeys(reviewer_ids))
    if not unique or len(unique) > MAX_REVIEWERS:
        raise Problem(400, "invalid_reviewers", f"a policy needs 1 to {MAX_REVIEWERS} reviewers")
    found = set(await session.scalars(select(User.id).where(User.tenant_id == tenant_id, User.id.in_(unique))))
    if len(found) != len(unique):
        raise not_found("reviewer")
    roles: dict[uuid.UUID, set[str]] = {u: set() for u in unique}
    for user_id, role in await session.execute(select(Membership.user_id, Membership.role).where(Membership.tenant_id == tenant_id, Membership.user_id.in_(unique))):
        roles[user_id].add(role)
    unable = [str(u) for u in unique if "qa.evaluate" not in permissions_for(roles[u])]
    if unable:
        raise Problem(400, "reviewer_cannot_evaluate", "every reviewer needs a role that may evaluate calls (qa_reviewer or tenant_admin)",
                      user_ids=unable)
    return unique


async def _check_queues(session: AsyncSession, *, tenant_id: uuid.UUID, queue_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    unique = list(dict.fromkeys(queue_ids))
    if len(unique) > MAX_QUEUES:
        raise Problem(400, "invalid_queues", f"a policy names at most {MAX_QUEUES} queues")
    found = set(await session.scalars(select(Queue.id).where(Queue.tenant_id == tenant_id, Queue.id.in_(unique)))) if unique else set()
    if len(found) != len(unique):
        raise not_found("queue")
    return unique


def _check_dispositions(codes: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(c.strip() for c in codes))
    if len(cleaned) > MAX_DISPOSITIONS or any(not c or len(c) > 64 for c in cleaned):
        raise Problem(400, "invalid_disposition_codes", f"at most {MAX_DISPOSITIONS} disposition codes of 1 to 64 characters")
    return cleaned


def _check_numbers(fields: PolicyFields) -> None:
    if fields.calls_per_agent is not None and not 1 <= fields.calls_per_agent <= 100:
        raise Problem(400, "invalid_calls_per_agent", "calls_per_agent must be 1 to 100")
    if fields.period is not None and fields.period not in PERIODS:
        raise Problem(400, "invalid_period", f"period must be one of {', '.join(PERIODS)}")
    if fields.min_duration_s is not None and not 0 <= fields.min_duration_s <= 86_400:
        raise Problem(400, "invalid_min_duration", "min_duration_s must be 0 to 86400")
    if fields.seed is not None and not 0 <= fields.seed < 2**31:
        raise Problem(400, "invalid_seed", "seed must be 0 to 2147483647")
    if fields.qa_type is not None:
        check_qa_type(fields.qa_type)


async def _set_members(session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID, queue_ids: list[uuid.UUID] | None,
                       reviewer_ids: list[uuid.UUID] | None) -> None:
    if queue_ids is not None:
        await session.execute(delete(QaSamplingPolicyQueue).where(QaSamplingPolicyQueue.tenant_id == tenant_id, QaSamplingPolicyQueue.policy_id == policy_id))
        session.add_all(QaSamplingPolicyQueue(tenant_id=tenant_id, policy_id=policy_id, queue_id=q) for q in queue_ids)
    if reviewer_ids is not None:
        await session.execute(
            delete(QaSamplingPolicyReviewer).where(QaSamplingPolicyReviewer.tenant_id == tenant_id, QaSamplingPolicyReviewer.policy_id == policy_id)
        )
        session.add_all(
            QaSamplingPolicyReviewer(tenant_id=tenant_id, policy_id=policy_id, reviewer_user_id=u, position=i) for i, u in enumerate(reviewer_ids)
        )
    await session.flush()


async def create_policy(session: AsyncSession, *, tenant_id: uuid.UUID, fields: PolicyFields, actor: str) -> QaSamplingPolicy:
    assert fields.name is not None and fields.scorecard_id is not None and fields.calls_per_agent is not None
    _check_numbers(fields)
    name = check_text(fields.name, code="invalid_name", what="the name", max_length=200)
    await latest_version(session, tenant_id=tenant_id, scorecard_id=fields.scorecard_id)
    queue_ids = await _check_queues(session, tenant_id=tenant_id, queue_ids=fields.queue_ids or [])
    reviewer_ids = await check_reviewers(session, tenant_id=tenant_id, reviewer_ids=fields.reviewer_ids or [])
    if await session.scalar(select(QaSamplingPolicy.id).where(QaSamplingPolicy.tenant_id == tenant_id, QaSamplingPolicy.name == name)):
        raise Problem(409, "policy_name_taken", "another sampling policy has this name")
    policy = QaSamplingPolicy(
        tenant_id=tenant_id, name=name, scorecard_id=fields.scorecard_id, qa_type=fields.qa_type or "random",
        calls_per_agent=fields.calls_per_agent, period=fields.period or "week", min_duration_s=fields.min_duration_s or 0,
        disposition_codes=_check_dispositions(fields.disposition_codes or []),
        recorded_only=True if fields.recorded_only is None else fields.recorded_only,
        seed=fields.seed if fields.seed is not None else secrets.randbelow(2**31), assigned_count=0,
        active=True if fields.active is None else fields.active,
    )
    session.add(policy)
    await session.flush()
    await _set_members(session, tenant_id=tenant_id, policy_id=policy.id, queue_ids=queue_ids, reviewer_ids=reviewer_ids)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.sampling_policy.created", target=f"qa_sampling_policy:{policy.id}",
                       detail={"name": name})
    return policy


async def get_policy(session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID) -> QaSamplingPolicy:
    row = await session.scalar(select(QaSamplingPolicy).where(QaSamplingPolicy.tenant_id == tenant_id, QaSamplingPolicy.id == policy_id))
    if row is None:
        raise not_found("sampling policy")
    return row


async def _lock_policy(session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID) -> QaSamplingPolicy:
    """The policy row locked for this transaction (a no-op UPDATE first, on SQLite and PostgreSQL alike)."""
    row = await session.scalar(
        update(QaSamplingPolicy).where(QaSamplingPolicy.tenant_id == tenant_id, QaSamplingPolicy.id == policy_id)
        .values(assigned_count=QaSamplingPolicy.assigned_count).returning(QaSamplingPolicy),
        execution_options={"populate_existing": True},
    )
    if row is None:
        raise not_found("sampling policy")
    return row


async def update_policy(
    session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID, fields: PolicyFields, actor: str
) -> QaSamplingPolicy:
    _check_numbers(fields)
    policy = await _lock_policy(session, tenant_id=tenant_id, policy_id=policy_id)
    if fields.scorecard_id is not None:
        await latest_version(session, tenant_id=tenant_id, scorecard_id=fields.scorecard_id)
    queue_ids = None if fields.queue_ids is None else await _check_queues(session, tenant_id=tenant_id, queue_ids=fields.queue_ids)
    reviewer_ids = None if fields.reviewer_ids is None else await check_reviewers(session, tenant_id=tenant_id, reviewer_ids=fields.reviewer_ids)
    codes = None if fields.disposition_codes is None else _check_dispositions(fields.disposition_codes)
    if fields.name is not None:
        name = check_text(fields.name, code="invalid_name", what="the name", max_length=200)
        clash = await session.scalar(select(QaSamplingPolicy.id).where(
            QaSamplingPolicy.tenant_id == tenant_id, QaSamplingPolicy.name == name, QaSamplingPolicy.id != policy.id))
        if clash is not None:
            raise Problem(409, "policy_name_taken", "another sampling policy has this name")
        policy.name = name
    for attribute in ("scorecard_id", "qa_type", "calls_per_agent", "period", "min_duration_s", "recorded_only", "seed", "active"):
        value = getattr(fields, attribute)
        if value is not None:
            setattr(policy, attribute, value)
    if codes is not None:
        policy.disposition_codes = codes
    await session.flush()
    await _set_members(session, tenant_id=tenant_id, policy_id=policy.id, queue_ids=queue_ids, reviewer_ids=reviewer_ids)
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.sampling_policy.updated", target=f"qa_sampling_policy:{policy.id}")
    return policy


async def delete_policy(session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID, actor: str) -> None:
    """The policy and its work items go; evaluations started from them stay."""
    policy = await _lock_policy(session, tenant_id=tenant_id, policy_id=policy_id)
    await session.execute(delete(QaWorkItem).where(QaWorkItem.tenant_id == tenant_id, QaWorkItem.policy_id == policy.id))
    await session.delete(policy)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.sampling_policy.deleted", target=f"qa_sampling_policy:{policy_id}",
                       detail={"name": policy.name})


async def members_of(session: AsyncSession, *, tenant_id: uuid.UUID, policy_ids: list[uuid.UUID]) -> tuple[dict[uuid.UUID, list[uuid.UUID]], dict[uuid.UUID, list[uuid.UUID]]]:
    """(queue ids, reviewer ids in round-robin order) of each policy."""
    queues: dict[uuid.UUID, list[uuid.UUID]] = {p: [] for p in policy_ids}
    reviewers: dict[uuid.UUID, list[uuid.UUID]] = {p: [] for p in policy_ids}
    for policy_id, queue_id in await session.execute(
        select(QaSamplingPolicyQueue.policy_id, QaSamplingPolicyQueue.queue_id)
        .where(QaSamplingPolicyQueue.tenant_id == tenant_id, QaSamplingPolicyQueue.policy_id.in_(policy_ids)).order_by(QaSamplingPolicyQueue.queue_id)
    ):
        queues[policy_id].append(queue_id)
    for policy_id, user_id in await session.execute(
        select(QaSamplingPolicyReviewer.policy_id, QaSamplingPolicyReviewer.reviewer_user_id)
        .where(QaSamplingPolicyReviewer.tenant_id == tenant_id, QaSamplingPolicyReviewer.policy_id.in_(policy_ids))
        .order_by(QaSamplingPolicyReviewer.position)
    ):
        reviewers[policy_id].append(user_id)
    return queues, reviewers


async def list_policies(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[QaSamplingPolicy]:
    return list(await session.scalars(select(QaSamplingPolicy).where(QaSamplingPolicy.tenant_id == tenant_id).order_by(QaSamplingPolicy.name)))


# --- filling work lists ---------------------------------------------------------------------------


def sample_order(seed: int, call_id: uuid.UUID) -> str:
    """The sort key that makes sampling random across calls and reproducible for a seed."""
    return hashlib.sha256(f"{seed}:{call_id}".encode()).hexdigest()


@dataclass(frozen=True)
class FillResult:
    policy_id: uuid.UUID
    period_start: datetime
    period_end: datetime
    added: int


async def fill_policy(session: AsyncSession, *, tenant_id: uuid.UUID, policy_id: uuid.UUID, at: datetime, now: datetime) -> FillResult:
    """Top up the policy's work items for the period holding ``at`` (see the module's docstring)."""
    policy = await _lock_policy(session, tenant_id=tenant_id, policy_id=policy_id)
    start, end = period_bounds(at, policy.period, await tenant_zone(session, tenant_id=tenant_id))
    queues, reviewers = await members_of(session, tenant_id=tenant_id, policy_ids=[policy.id])
    order = reviewers[policy.id]
    if not order:
        return FillResult(policy.id, start, end, 0)
    query = select(Call).where(
        Call.tenant_id == tenant_id, Call.status == "ended", Call.agent_id.is_not(None), Call.answered_at.is_not(None),
        Call.ended_at >= start, Call.ended_at < end,
    )
    if queues[policy.id]:
        query = query.where(Call.queue_id.in_(queues[policy.id]))
    if policy.disposition_codes:
        query = query.where(Call.disposition_code.in_(policy.disposition_codes))
    if policy.recorded_only:
        query = query.where(exists().where(Recording.tenant_id == tenant_id, Recording.call_id == Call.id))
    # A call already evaluated (calibrations aside) needs no second look.
    query = query.where(~exists().where(
        QaEvaluationCall.tenant_id == tenant_id, QaEvaluationCall.call_id == Call.id, QaEvaluation.tenant_id == tenant_id,
        QaEvaluation.id == QaEvaluationCall.evaluation_id, QaEvaluation.calibration_id.is_(None),
    ))
    candidates = [c for c in await session.scalars(query) if talk_seconds(c) >= policy.min_duration_s]
    existing = (await session.execute(
        select(QaWorkItem.call_id, QaWorkItem.agent_id).where(
            QaWorkItem.tenant_id == tenant_id, QaWorkItem.policy_id == policy.id, QaWorkItem.period_start == start)
    )).all()
    sampled = {call_id for call_id, _ in existing}
    per_agent: dict[uuid.UUID, int] = {}
    for _, agent_id in existing:
        per_agent[agent_id] = per_agent.get(agent_id, 0) + 1
    by_agent: dict[uuid.UUID, list[Call]] = {}
    for call in candidates:
        if call.id not in sampled:
            assert call.agent_id is not None
            by_agent.setdefault(call.agent_id, []).append(call)
    # The agents' users: a reviewer never gets its own calls.
    agent_users = dict((await session.execute(
        select(Agent.id, Agent.user_id).where(Agent.tenant_id == tenant_id, Agent.id.in_(list(by_agent)))
    )).all()) if by_agent else {}
    added = 0
    for agent_id in sorted(by_agent):
        room = policy.calls_per_agent - per_agent.get(agent_id, 0)
        for call in sorted(by_agent[agent_id], key=lambda c: sample_order(policy.seed, c.id))[: max(0, room)]:
            eligible = [u for u in order if u != agent_users.get(agent_id)]
            if not eligible:
                break
            reviewer = eligible[policy.assigned_count % len(eligible)]
            item = QaWorkItem(
                tenant_id=tenant_id, policy_id=policy.id, period_start=start, period_end=end, call_id=call.id, agent_id=agent_id,
                reviewer_user_id=reviewer, status="open", created_at=now,
            )
            try:
                async with session.begin_nested():
                    session.add(item)
                    await session.flush()
            except IntegrityError:
                continue  # already sampled (the unique key is the last word)
            policy.assigned_count += 1
            added += 1
    await session.flush()
    return FillResult(policy.id, start, end, added)


@tenant_job(key=lambda kw: f"qa-sampling:{kw['tick']}", max_retries=5)
async def fill_work_lists(job: JobContext, session: AsyncSession, *, tenant_id: uuid.UUID, tick: str, at: str) -> None:
    """Every active policy of the tenant, for the period holding ``at`` (one run per tick)."""
    moment = datetime.fromisoformat(at)
    policy_ids = list(await session.scalars(
        select(QaSamplingPolicy.id).where(QaSamplingPolicy.tenant_id == tenant_id, QaSamplingPolicy.active.is_(True)).order_by(QaSamplingPolicy.id)
    ))
    for policy_id in policy_ids:
        await fill_policy(session, tenant_id=tenant_id, policy_id=policy_id, at=moment, now=utcnow())


class SamplingScheduler(TenantJobScheduler):
    """Every ``interval_s`` (worker processes): one ``fill_work_lists`` job per active tenant
    with an active policy."""

    name = "qa sampling scheduler"
    reason = "scheduled QA sampling"

    async def tenants(self, session: AsyncSession) -> list[uuid.UUID]:
        return list(await session.scalars(
            select(QaSamplingPolicy.tenant_id).distinct().join(Tenant, Tenant.id == QaSamplingPolicy.tenant_id)
            .where(QaSamplingPolicy.active.is_(True), Tenant.status == TenantStatus.ACTIVE)
        ))

    async def enqueue(self, session: AsyncSession, tenant_id: uuid.UUID, *, tick: str, now: datetime) -> None:
        await enqueue(session, fill_work_lists, tenant_id=tenant_id, tick=tick, at=now.isoformat())


# --- the work list ---------------------------------------------------------------------------------


async def list_items(
    session: AsyncSession, *, tenant_id: uuid.UUID, reviewer_id: uuid.UUID | None, policy_id: uuid.UUID | None, status: str,
    limit: int, offset: int,
) -> tuple[list[QaWorkItem], int]:
    where: list[Any] = [QaWorkItem.tenant_id == tenant_id]
    if reviewer_id is not None:
        where.append(QaWorkItem.reviewer_user_id == reviewer_id)
    if policy_id is not None:
        where.append(QaWorkItem.policy_id == policy_id)
    if status != "all":
        where.append(QaWorkItem.status == status)
    total = await session.scalar(select(func.count()).select_from(QaWorkItem).where(*where)) or 0
    rows = await session.scalars(
        select(QaWorkItem).where(*where).order_by(QaWorkItem.period_start.desc(), QaWorkItem.created_at, QaWorkItem.id).limit(limit).offset(offset)
    )
    return list(rows), total


async def start_item(
    session: AsyncSession, *, tenant_id: uuid.UUID, item_id: uuid.UUID, user_id: uuid.UUID, may_take_any: bool, now: datetime
) -> tuple[QaEvaluation, bool]:
    """The evaluation of a work item: the one already opened from it, or a new draft by its
    reviewer (``may_take_any``, qa.manage: any evaluator may open someone else's item).
    Returns (evaluation, created)."""
    item = await session.scalar(select(QaWorkItem).where(QaWorkItem.tenant_id == tenant_id, QaWorkItem.id == item_id).with_for_update())
    if item is None:
        raise not_found("work item")
    if item.reviewer_user_id != user_id and not may_take_any:
        raise Problem(403, "not_your_work_item", "this call is on another reviewer's work list")
    if item.evaluation_id is not None:
        evaluation = await session.scalar(select(QaEvaluation).where(QaEvaluation.tenant_id == tenant_id, QaEvaluation.id == item.evaluation_id))
        assert evaluation is not None
        return evaluation, False
    if item.status == "done":
        raise Problem(409, "work_item_done", "this work item is already done")
    policy = await get_policy(session, tenant_id=tenant_id, policy_id=item.policy_id)
    evaluation = await create_evaluation(
        session, tenant_id=tenant_id, reviewer_user_id=user_id, scorecard_id=policy.scorecard_id, call_ids=[item.call_id],
        qa_type=policy.qa_type, business_type=None, comments=None, now=now,
    )
    item.evaluation_id = evaluation.id
    await session.flush()
    return evaluation, True
