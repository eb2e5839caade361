"""HTTP API of quality assurance, under ``/api/v1/qa``, and the agent's side under
``/api/v1/agent/qa`` with the agent desktop's routes (docs/qa.md lists every route).

Permissions: ``qa.manage`` (scorecards, sampling policies), ``qa.evaluate`` (score calls,
calibrate, second reviews, file library items), ``qa.read`` (read evaluations and
reports), ``qa.own`` (an agent's own evaluations, acknowledge or dispute, browse the
library).  Time comes from ``runtime.components["qa.clock"]`` when a test sets one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.db.base import utcnow
from kefu.platform.deps import CurrentPrincipal, DbSession, RuntimeDep, TenantId
from kefu.platform.identity.principal import requires, requires_any
from kefu.platform.problems import Problem
from kefu.platform.runtime import Runtime
from kefu.tenants.models import Agent, Call, Queue, Recording
from kefu.tenants.qa import calibration as calibrations
from kefu.tenants.qa import evaluations, library, reports, sampling, scorecards
from kefu.tenants.qa.calls import call_serial, talk_seconds
from kefu.tenants.qa.models import QaEvaluation, QaEvaluationCall, QaLibraryItem, QaSamplingPolicy, QaScorecard, QaScorecardVersion, QaWorkItem
from kefu.tenants.qa.schemas import (
    AnswerOut,
    CalibrationCreate,
    CalibrationOut,
    CalibrationReviewerOut,
    CoveredCallOut,
    DisputeIn,
    EvaluationCreate,
    EvaluationOut,
    EvaluationPage,
    EvaluationSubmit,
    EvaluationSummary,
    EvaluationUpdate,
    LibraryCreate,
    LibraryItemOut,
    LibraryPage,
    LibraryUpdate,
    PolicyCreate,
    PolicyOut,
    PolicyRunIn,
    PolicyRunOut,
    PolicyUpdate,
    ScorecardCreate,
    ScorecardOut,
    ScorecardUpdate,
    ScorecardVersionOut,
    SecondReviewIn,
    WorkItemOut,
    WorkItemPage,
)
from kefu.tenants.recordings import links
from kefu.tenants.recordings.hooks import register_qa_status_filter
from kefu.tenants.recordings.schemas import PartyLinkOut, PlaybackOut
from kefu.tenants.schemas import RecordingMeta

Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Offset = Annotated[int, QueryParameter(ge=0)]
READERS = ("qa.read", "qa.evaluate", "qa.manage")


def now_of(runtime: Runtime) -> datetime:
    clock = runtime.components.get("qa.clock") or utcnow
    return clock()


# --- views --------------------------------------------------------------------------------------


def _scorecard_out(row: QaScorecard) -> ScorecardOut:
    return ScorecardOut(row.id, row.name, row.description, row.status, row.draft, row.draft_updated_at, row.published_version, row.retired_at,
                        row.created_by, row.created_at)


def _version_out(row: QaScorecardVersion) -> ScorecardVersionOut:
    return ScorecardVersionOut(row.id, row.scorecard_id, row.number, row.name, row.document, row.published_at, row.published_by)


def _recording_out(row: Recording) -> RecordingMeta:
    return RecordingMeta(row.id, row.call_id, row.party, row.media_type, row.started_at, row.ended_at, row.size_bytes, row.duration_ms)


def _answers(values: list[dict[str, Any]] | None) -> list[AnswerOut] | None:
    if values is None:
        return None
    return [AnswerOut(a["question_id"], a["value"], a.get("comment"), a.get("score")) for a in values]


def _summary_fields(row: QaEvaluation, names: evaluations.Names) -> dict[str, Any]:
    return dict(
        id=row.id, status=row.status, scorecard_id=row.scorecard_id, scorecard_name=names.scorecards.get(row.scorecard_id),
        scorecard_version_id=row.scorecard_version_id, scorecard_version=names.versions.get(row.scorecard_version_id), qa_type=row.qa_type,
        business_type=row.business_type, reviewer_id=row.reviewer_user_id, reviewer_name=names.users.get(row.reviewer_user_id),
        agent_id=row.agent_id, agent_name=names.agents.get(row.agent_id), queue_id=row.queue_id, start_serial=row.start_serial,
        end_serial=row.end_serial, call_ids=names.call_ids.get(row.id, []), call_duration_s=row.call_duration_s, total_score=row.total_score,
        grade=row.grade, auto_failed=row.auto_failed, started_at=row.started_at, submitted_at=row.submitted_at, comments=row.comments,
        acknowledged_at=row.acknowledged_at, disputed_at=row.disputed_at, dispute_reason=row.dispute_reason,
        second_reviewer_id=row.second_reviewer_user_id,
        second_reviewer_name=names.users.get(row.second_reviewer_user_id) if row.second_reviewer_user_id else None,
        second_reviewed_at=row.second_reviewed_at, second_review_outcome=row.second_review_outcome,
        second_review_comments=row.second_review_comments, original_total_score=row.original_total_score, original_grade=row.original_grade,
        calibration_id=row.calibration_id,
    )


async def _summaries(db: AsyncSession, tenant_id: uuid.UUID, rows: list[QaEvaluation]) -> list[EvaluationSummary]:
    names = await evaluations.names_for(db, tenant_id=tenant_id, rows=rows)
    return [EvaluationSummary(**_summary_fields(row, names)) for row in rows]


async def _evaluation_out(db: AsyncSession, tenant_id: uuid.UUID, row: QaEvaluation) -> EvaluationOut:
    names = await evaluations.names_for(db, tenant_id=tenant_id, rows=[row])
    document = await db.scalar(select(QaScorecardVersion.document).where(
        QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id == row.scorecard_version_id))
    views = await evaluations.covered_call_views(db, tenant_id=tenant_id, call_ids=names.call_ids.get(row.id, []))
    calls = [
        CoveredCallOut(v.call.id, v.serial, v.call.started_at, v.call.answered_at, v.call.ended_at, v.duration_s, v.call.queue_id,
                       v.call.caller_name, v.call.disposition_code, [_recording_out(r) for r in v.recordings])
        for v in views
    ]
    return EvaluationOut(**_summary_fields(row, names), answers=_answers(row.answers) or [], original_answers=_answers(row.original_answers),
                         scorecard=document or {}, calls=calls)


async def _policy_out(db: AsyncSession, tenant_id: uuid.UUID, rows: list[QaSamplingPolicy]) -> list[PolicyOut]:
    queues, reviewers = await sampling.members_of(db, tenant_id=tenant_id, policy_ids=[r.id for r in rows])
    return [
        PolicyOut(r.id, r.name, r.scorecard_id, r.qa_type, r.calls_per_agent, r.period, r.min_duration_s, queues[r.id], list(r.disposition_codes),
                  r.recorded_only, reviewers[r.id], r.seed, r.active, r.created_at)
        for r in rows
    ]


async def _work_items_out(db: AsyncSession, tenant_id: uuid.UUID, items: list[QaWorkItem]) -> list[WorkItemOut]:
    if not items:
        return []
    calls = {c.id: c for c in await db.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.id.in_({i.call_id for i in items})))}
    policies = {p.id: p for p in await db.scalars(select(QaSamplingPolicy).where(
        QaSamplingPolicy.tenant_id == tenant_id, QaSamplingPolicy.id.in_({i.policy_id for i in items})))}
    agents = dict((await db.execute(select(Agent.id, Agent.display_name).where(
        Agent.tenant_id == tenant_id, Agent.id.in_({i.agent_id for i in items})))).all())
    queue_ids = {c.queue_id for c in calls.values() if c.queue_id}
    queues = dict((await db.execute(select(Queue.id, Queue.name).where(Queue.tenant_id == tenant_id, Queue.id.in_(queue_ids))))
                  .all()) if queue_ids else {}
    evaluation_ids = {i.evaluation_id for i in items if i.evaluation_id}
    statuses = dict((await db.execute(select(QaEvaluation.id, QaEvaluation.status).where(
        QaEvaluation.tenant_id == tenant_id, QaEvaluation.id.in_(evaluation_ids)))).all()) if evaluation_ids else {}
    out = []
    for item in items:
        call, policy = calls[item.call_id], policies[item.policy_id]
        out.append(WorkItemOut(
            id=item.id, status=item.status, policy_id=policy.id, policy_name=policy.name, scorecard_id=policy.scorecard_id, qa_type=policy.qa_type,
            period_start=item.period_start, period_end=item.period_end, reviewer_id=item.reviewer_user_id, call_id=call.id,
            call_serial=call_serial(call.id, call.started_at), call_started_at=call.started_at, call_duration_s=talk_seconds(call),
            queue_id=call.queue_id, queue_name=queues.get(call.queue_id) if call.queue_id else None, agent_id=item.agent_id,
            agent_name=agents.get(item.agent_id), evaluation_id=item.evaluation_id,
            evaluation_status=statuses.get(item.evaluation_id) if item.evaluation_id else None, created_at=item.created_at, done_at=item.done_at,
        ))
    return out


async def _calibration_out(db: AsyncSession, tenant_id: uuid.UUID, row: Any) -> CalibrationOut:
    people = await calibrations.participants(db, tenant_id=tenant_id, calibration=row)
    call = await db.scalar(select(Call).where(Call.tenant_id == tenant_id, Call.id == row.call_id))
    version = await db.scalar(select(QaScorecardVersion).where(QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id == row.scorecard_version_id))
    assert call is not None and version is not None
    return CalibrationOut(
        id=row.id, title=row.title, status=row.status, call_id=call.id, call_serial=call_serial(call.id, call.started_at),
        scorecard_id=version.scorecard_id, scorecard_version_id=version.id,
        reviewers=[CalibrationReviewerOut(p.user_id, p.name, p.submitted) for p in people],
        created_by=row.created_by, created_at=row.created_at, closed_at=row.closed_at,
    )


async def _library_out(db: AsyncSession, tenant_id: uuid.UUID, items: list[QaLibraryItem]) -> list[LibraryItemOut]:
    if not items:
        return []
    call_ids = {i.call_id for i in items}
    calls = {c.id: c for c in await db.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.id.in_(call_ids)))}
    agent_ids = {c.agent_id for c in calls.values() if c.agent_id}
    agents = dict((await db.execute(select(Agent.id, Agent.display_name).where(Agent.tenant_id == tenant_id, Agent.id.in_(agent_ids))))
                  .all()) if agent_ids else {}
    recordings: dict[uuid.UUID, list[uuid.UUID]] = {c: [] for c in call_ids}
    for call_id, recording_id in await db.execute(
        select(Recording.call_id, Recording.id).where(Recording.tenant_id == tenant_id, Recording.call_id.in_(call_ids)).order_by(Recording.party)
    ):
        recordings[call_id].append(recording_id)
    tags = await library.tags_of(db, tenant_id=tenant_id, item_ids=[i.id for i in items])
    out = []
    for item in items:
        call = calls[item.call_id]
        out.append(LibraryItemOut(
            id=item.id, call_id=call.id, call_serial=call_serial(call.id, call.started_at), call_started_at=call.started_at,
            call_duration_s=talk_seconds(call), queue_id=call.queue_id, agent_id=call.agent_id,
            agent_name=agents.get(call.agent_id) if call.agent_id else None, kind=item.kind, title=item.title, notes=item.notes,
            tags=tags[item.id], recording_ids=recordings[call.id], filed_by=item.filed_by, created_at=item.created_at, updated_at=item.updated_at,
        ))
    return out


# --- scorecards -----------------------------------------------------------------------------------


class ScorecardsController(Controller):
    path = "/api/v1/qa"
    tags = ["quality assurance"]

    @get("/scorecards", guards=[requires_any(*READERS)])
    async def list_scorecards(self, db: DbSession, tenant_id: TenantId,
                              include_retired: Annotated[bool, QueryParameter()] = False) -> list[ScorecardOut]:
        return [_scorecard_out(r) for r in await scorecards.list_scorecards(db, tenant_id=tenant_id, include_retired=include_retired)]

    @post("/scorecards", guards=[requires("qa.manage")])
    async def create_scorecard(self, data: JSONBody[ScorecardCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> ScorecardOut:
        """A new scorecard with its draft (checked: weights, scales, grade bands); publish it to use it."""
        row = await scorecards.create_scorecard(db, tenant_id=tenant_id, name=data.name, description=data.description, document=data.document,
                                                actor=principal.actor)
        return _scorecard_out(row)

    @get("/scorecards/{scorecard_id:uuid}", guards=[requires_any(*READERS)])
    async def get_scorecard(self, scorecard_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> ScorecardOut:
        return _scorecard_out(await scorecards.get_scorecard(db, tenant_id=tenant_id, scorecard_id=scorecard_id))

    @patch("/scorecards/{scorecard_id:uuid}", guards=[requires("qa.manage")])
    async def update_scorecard(self, scorecard_id: FromPath[uuid.UUID], data: JSONBody[ScorecardUpdate], db: DbSession, tenant_id: TenantId,
                               principal: CurrentPrincipal) -> ScorecardOut:
        """Rename, describe or replace the draft (published versions never change)."""
        row = await scorecards.update_scorecard(db, tenant_id=tenant_id, scorecard_id=scorecard_id, name=data.name, description=data.description,
                                                document=data.document, actor=principal.actor)
        return _scorecard_out(row)

    @post("/scorecards/{scorecard_id:uuid}/publish", guards=[requires("qa.manage")], status_code=201)
    async def publish(self, scorecard_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> ScorecardVersionOut:
        return _version_out(await scorecards.publish(db, tenant_id=tenant_id, scorecard_id=scorecard_id, actor=principal.actor))

    @post("/scorecards/{scorecard_id:uuid}/retire", guards=[requires("qa.manage")], status_code=200)
    async def retire(self, scorecard_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> ScorecardOut:
        return _scorecard_out(await scorecards.retire(db, tenant_id=tenant_id, scorecard_id=scorecard_id, actor=principal.actor))

    @get("/scorecards/{scorecard_id:uuid}/versions", guards=[requires_any(*READERS)])
    async def versions(self, scorecard_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> list[ScorecardVersionOut]:
        """Newest first."""
        return [_version_out(v) for v in await scorecards.list_versions(db, tenant_id=tenant_id, scorecard_id=scorecard_id)]

    @get("/scorecard-versions/{scorecard_version_id:uuid}", guards=[requires_any(*READERS, "qa.own")])
    async def version(self, scorecard_version_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> ScorecardVersionOut:
        """One published version (agents read the version their evaluation names)."""
        return _version_out(await scorecards.get_version(db, tenant_id=tenant_id, version_id=scorecard_version_id))


# --- evaluations ------------------------------------------------------------------------------------


class EvaluationsController(Controller):
    path = "/api/v1/qa/evaluations"
    tags = ["quality assurance"]

    @get("/", guards=[requires_any("qa.read", "qa.evaluate")])
    async def search(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        serial: Annotated[str | None, QueryParameter(max_length=32)] = None,
        start_serial: Annotated[str | None, QueryParameter(max_length=32)] = None,
        end_serial: Annotated[str | None, QueryParameter(max_length=32)] = None,
        call_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        reviewer_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        agent_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        qa_type: Annotated[str | None, QueryParameter(max_length=16)] = None,
        business_type: Annotated[str | None, QueryParameter(max_length=64)] = None,
        score_min: Annotated[float | None, QueryParameter()] = None,
        score_max: Annotated[float | None, QueryParameter()] = None,
        grade: Annotated[str | None, QueryParameter(max_length=16)] = None,
        started_from: Annotated[datetime | None, QueryParameter()] = None,
        started_to: Annotated[datetime | None, QueryParameter()] = None,
        submitted_from: Annotated[datetime | None, QueryParameter()] = None,
        submitted_to: Annotated[datetime | None, QueryParameter()] = None,
        duration_min: Annotated[int | None, QueryParameter(ge=0)] = None,
        duration_max: Annotated[int | None, QueryParameter(ge=0)] = None,
        status: Annotated[Literal["draft", "submitted", "acknowledged", "disputed", "final"] | None, QueryParameter()] = None,
        scorecard_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        queue_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        auto_failed: Annotated[bool | None, QueryParameter()] = None,
        comments: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Limit = 50, offset: Offset = 0,
    ) -> EvaluationPage:
        """Search by any of the evaluation's fields (all given conditions hold), newest first.
        ``serial`` names any covered call; ``start_serial`` and ``end_serial`` are exact;
        ``comments`` is a case-insensitive "contains"."""
        filters = evaluations.Filters(
            serial=serial, start_serial=start_serial, end_serial=end_serial, call_id=call_id, reviewer_id=reviewer_id, agent_id=agent_id,
            qa_type=qa_type, business_type=business_type,
            score_min=score_min, score_max=score_max, grade=grade, started_from=started_from, started_to=started_to,
            submitted_from=submitted_from, submitted_to=submitted_to, duration_min=duration_min, duration_max=duration_max, status=status,
            scorecard_id=scorecard_id, queue_id=queue_id, auto_failed=auto_failed, comments=comments,
        )
        visibility = evaluations.reviewer_visibility(principal)
        rows, total = await evaluations.search(db, tenant_id=tenant_id, filters=filters, limit=limit, offset=offset,
                                               extra=[visibility] if visibility is not None else None)
        return EvaluationPage(items=await _summaries(db, tenant_id, rows), total=total, limit=limit, offset=offset)

    @post("/", guards=[requires("qa.evaluate")])
    async def create(self, data: JSONBody[EvaluationCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                     runtime: RuntimeDep) -> EvaluationOut:
        """Open a draft on the calls (the evaluation start time is now)."""
        row = await evaluations.create_evaluation(
            db, tenant_id=tenant_id, reviewer_user_id=principal.user_id, scorecard_id=data.scorecard_id, call_ids=data.call_ids,
            qa_type=data.qa_type, business_type=data.business_type, comments=data.comments, now=now_of(runtime),
        )
        return await _evaluation_out(db, tenant_id, row)

    @get("/{evaluation_id:uuid}", guards=[requires_any("qa.read", "qa.evaluate")])
    async def get_one(self, evaluation_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> EvaluationOut:
        row = await evaluations.get_for_reviewer(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal)
        return await _evaluation_out(db, tenant_id, row)

    @patch("/{evaluation_id:uuid}", guards=[requires("qa.evaluate")])
    async def update(self, evaluation_id: FromPath[uuid.UUID], data: JSONBody[EvaluationUpdate], db: DbSession, tenant_id: TenantId,
                     principal: CurrentPrincipal, runtime: RuntimeDep) -> EvaluationOut:
        """Save the draft's answers so far (checked, not yet scored), comments, business or QA type."""
        row = await evaluations.update_draft(
            db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, answers=data.answers, comments=data.comments,
            business_type=data.business_type, qa_type=data.qa_type, now=now_of(runtime),
        )
        return await _evaluation_out(db, tenant_id, row)

    @delete("/{evaluation_id:uuid}", guards=[requires("qa.evaluate")], status_code=204)
    async def discard(self, evaluation_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        """Discard the caller's own draft."""
        await evaluations.discard(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal)

    @post("/{evaluation_id:uuid}/submit", guards=[requires("qa.evaluate")], status_code=200)
    async def submit(self, evaluation_id: FromPath[uuid.UUID], data: JSONBody[EvaluationSubmit], db: DbSession, tenant_id: TenantId,
                     principal: CurrentPrincipal, runtime: RuntimeDep) -> EvaluationOut:
        """Score and submit (the evaluation end time is now)."""
        row = await evaluations.submit(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, answers=data.answers,
                                       comments=data.comments, now=now_of(runtime))
        return await _evaluation_out(db, tenant_id, row)

    @post("/{evaluation_id:uuid}/second-review", guards=[requires("qa.evaluate")], status_code=200)
    async def second_review(self, evaluation_id: FromPath[uuid.UUID], data: JSONBody[SecondReviewIn], db: DbSession, tenant_id: TenantId,
                            principal: CurrentPrincipal, runtime: RuntimeDep) -> EvaluationOut:
        row = await evaluations.second_review(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, outcome=data.outcome,
                                              answers=data.answers, comments=data.comments, now=now_of(runtime))
        return await _evaluation_out(db, tenant_id, row)


class MyEvaluationsController(Controller):
    """The agent's side: its own scored evaluations (never drafts or calibrations)."""

    path = "/api/v1/agent/qa/evaluations"
    tags = ["quality assurance"]
    guards = [requires("qa.own")]

    @get("/")
    async def list_mine(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        status: Annotated[Literal["submitted", "acknowledged", "disputed", "final"] | None, QueryParameter()] = None,
        limit: Limit = 50, offset: Offset = 0,
    ) -> EvaluationPage:
        agent_id = await evaluations.own_agent_id(db, tenant_id=tenant_id, principal=principal)
        extra = [QaEvaluation.status.in_(evaluations.AGENT_VISIBLE), QaEvaluation.calibration_id.is_(None)]
        rows, total = await evaluations.search(db, tenant_id=tenant_id, filters=evaluations.Filters(agent_id=agent_id, status=status),
                                               limit=limit, offset=offset, extra=extra)
        return EvaluationPage(items=await _summaries(db, tenant_id, rows), total=total, limit=limit, offset=offset)

    @get("/{evaluation_id:uuid}")
    async def get_mine(self, evaluation_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> EvaluationOut:
        row = await evaluations.get_for_agent(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal)
        return await _evaluation_out(db, tenant_id, row)

    @post("/{evaluation_id:uuid}/acknowledge", status_code=200)
    async def acknowledge(self, evaluation_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                          runtime: RuntimeDep) -> EvaluationOut:
        row = await evaluations.acknowledge(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, now=now_of(runtime))
        return await _evaluation_out(db, tenant_id, row)

    @post("/{evaluation_id:uuid}/dispute", status_code=200)
    async def dispute(self, evaluation_id: FromPath[uuid.UUID], data: JSONBody[DisputeIn], db: DbSession, tenant_id: TenantId,
                      principal: CurrentPrincipal, runtime: RuntimeDep) -> EvaluationOut:
        row = await evaluations.dispute(db, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, reason=data.reason,
                                        now=now_of(runtime))
        return await _evaluation_out(db, tenant_id, row)


# --- sampling and work lists ------------------------------------------------------------------------


def _policy_fields(data: PolicyCreate | PolicyUpdate) -> sampling.PolicyFields:
    return sampling.PolicyFields(**{f: getattr(data, f) for f in sampling.PolicyFields.__dataclass_fields__})


class SamplingController(Controller):
    path = "/api/v1/qa"
    tags = ["quality assurance"]

    @get("/sampling-policies", guards=[requires_any("qa.manage", "qa.read")])
    async def list_policies(self, db: DbSession, tenant_id: TenantId) -> list[PolicyOut]:
        return await _policy_out(db, tenant_id, await sampling.list_policies(db, tenant_id=tenant_id))

    @post("/sampling-policies", guards=[requires("qa.manage")])
    async def create_policy(self, data: JSONBody[PolicyCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> PolicyOut:
        row = await sampling.create_policy(db, tenant_id=tenant_id, fields=_policy_fields(data), actor=principal.actor)
        return (await _policy_out(db, tenant_id, [row]))[0]

    @get("/sampling-policies/{sampling_policy_id:uuid}", guards=[requires_any("qa.manage", "qa.read")])
    async def get_policy(self, sampling_policy_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> PolicyOut:
        row = await sampling.get_policy(db, tenant_id=tenant_id, policy_id=sampling_policy_id)
        return (await _policy_out(db, tenant_id, [row]))[0]

    @patch("/sampling-policies/{sampling_policy_id:uuid}", guards=[requires("qa.manage")])
    async def update_policy(self, sampling_policy_id: FromPath[uuid.UUID], data: JSONBody[PolicyUpdate], db: DbSession, tenant_id: TenantId,
                            principal: CurrentPrincipal) -> PolicyOut:
        row = await sampling.update_policy(db, tenant_id=tenant_id, policy_id=sampling_policy_id, fields=_policy_fields(data), actor=principal.actor)
        return (await _policy_out(db, tenant_id, [row]))[0]

    @delete("/sampling-policies/{sampling_policy_id:uuid}", guards=[requires("qa.manage")], status_code=204)
    async def delete_policy(self, sampling_policy_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await sampling.delete_policy(db, tenant_id=tenant_id, policy_id=sampling_policy_id, actor=principal.actor)

    @post("/sampling-policies/{sampling_policy_id:uuid}/run", guards=[requires("qa.manage")], status_code=200)
    async def run_policy(self, sampling_policy_id: FromPath[uuid.UUID], data: JSONBody[PolicyRunIn], db: DbSession, tenant_id: TenantId,
                         runtime: RuntimeDep) -> PolicyRunOut:
        """Fill the work lists now for the period holding ``at`` (default now); idempotent."""
        now = now_of(runtime)
        at = data.at or now
        if at.tzinfo is None:
            raise Problem(400, "invalid_at", "at must carry a time zone")
        result = await sampling.fill_policy(db, tenant_id=tenant_id, policy_id=sampling_policy_id, at=at, now=now)
        return PolicyRunOut(result.policy_id, result.period_start, result.period_end, result.added)

    @get("/work-list", guards=[requires("qa.evaluate")])
    async def my_work_list(
        self, db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
        status: Annotated[Literal["open", "done", "all"], QueryParameter()] = "open", limit: Limit = 50, offset: Offset = 0,
    ) -> WorkItemPage:
        """The caller's own work list: the calls sampled for it, the current period first."""
        items, total = await sampling.list_items(db, tenant_id=tenant_id, reviewer_id=principal.user_id, policy_id=None, status=status,
                                                 limit=limit, offset=offset)
        return WorkItemPage(items=await _work_items_out(db, tenant_id, items), total=total, limit=limit, offset=offset)

    @get("/work-items", guards=[requires_any("qa.read", "qa.manage")])
    async def work_items(
        self, db: DbSession, tenant_id: TenantId,
        reviewer_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        sampling_policy_id: Annotated[uuid.UUID | None, QueryParameter(name="policy_id")] = None,
        status: Annotated[Literal["open", "done", "all"], QueryParameter()] = "open", limit: Limit = 50, offset: Offset = 0,
    ) -> WorkItemPage:
        """Every reviewer's work items (managers follow the work lists)."""
        items, total = await sampling.list_items(db, tenant_id=tenant_id, reviewer_id=reviewer_id, policy_id=sampling_policy_id, status=status,
                                                 limit=limit, offset=offset)
        return WorkItemPage(items=await _work_items_out(db, tenant_id, items), total=total, limit=limit, offset=offset)

    @post("/work-items/{work_item_id:uuid}/evaluation", guards=[requires("qa.evaluate")], status_code=200)
    async def start_work_item(self, work_item_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                              runtime: RuntimeDep) -> Response[EvaluationOut]:
        """The item's evaluation: 201 with a new draft, or 200 with the one already opened."""
        row, created = await sampling.start_item(db, tenant_id=tenant_id, item_id=work_item_id, user_id=principal.user_id,
                                                 may_take_any=principal.can("qa.manage"), now=now_of(runtime))
        return Response(await _evaluation_out(db, tenant_id, row), status_code=201 if created else 200)


# --- calibration ---------------------------------------------------------------------------------------


class CalibrationController(Controller):
    path = "/api/v1/qa/calibrations"
    tags = ["quality assurance"]

    @get("/", guards=[requires_any("qa.read", "qa.evaluate")])
    async def list_calibrations(self, db: DbSession, tenant_id: TenantId,
                                status: Annotated[Literal["open", "closed", "all"], QueryParameter()] = "all") -> list[CalibrationOut]:
        return [await _calibration_out(db, tenant_id, r) for r in await calibrations.list_calibrations(db, tenant_id=tenant_id, status=status)]

    @post("/", guards=[requires("qa.evaluate")])
    async def create(self, data: JSONBody[CalibrationCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                     runtime: RuntimeDep) -> CalibrationOut:
        row = await calibrations.create_calibration(db, tenant_id=tenant_id, call_id=data.call_id, scorecard_id=data.scorecard_id,
                                                    reviewer_ids=data.reviewer_ids, title=data.title, actor=principal.actor, now=now_of(runtime))
        return await _calibration_out(db, tenant_id, row)

    @get("/{calibration_id:uuid}", guards=[requires_any("qa.read", "qa.evaluate")])
    async def get_one(self, calibration_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> CalibrationOut:
        return await _calibration_out(db, tenant_id, await calibrations.get_calibration(db, tenant_id=tenant_id, calibration_id=calibration_id))

    @post("/{calibration_id:uuid}/evaluation", guards=[requires("qa.evaluate")], status_code=200)
    async def my_evaluation(self, calibration_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                            runtime: RuntimeDep) -> Response[EvaluationOut]:
        """The caller's own evaluation of the session's call: 201 when opened now, 200 when it existed."""
        row, created = await calibrations.open_evaluation(db, tenant_id=tenant_id, calibration_id=calibration_id, principal=principal,
                                                          now=now_of(runtime))
        return Response(await _evaluation_out(db, tenant_id, row), status_code=201 if created else 200)

    @get("/{calibration_id:uuid}/results", guards=[requires_any("qa.read", "qa.evaluate")])
    async def results(self, calibration_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> dict[str, Any]:
        """Per question every submitted answer and the spread; a participant sees it once it has submitted its own."""
        return await calibrations.results(db, tenant_id=tenant_id, calibration_id=calibration_id, principal=principal)

    @post("/{calibration_id:uuid}/close", guards=[requires("qa.evaluate")], status_code=200)
    async def close(self, calibration_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                    runtime: RuntimeDep) -> CalibrationOut:
        row = await calibrations.close(db, tenant_id=tenant_id, calibration_id=calibration_id, actor=principal.actor, now=now_of(runtime))
        return await _calibration_out(db, tenant_id, row)


# --- library ----------------------------------------------------------------------------------------------


class LibraryController(Controller):
    path = "/api/v1/qa/library"
    tags = ["quality assurance"]

    @get("/", guards=[requires_any("qa.own", *READERS)])
    async def browse(
        self, db: DbSession, tenant_id: TenantId,
        tag: Annotated[str | None, QueryParameter(max_length=64)] = None,
        kind: Annotated[Literal["excellent", "instructive"] | None, QueryParameter()] = None,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Limit = 50, offset: Offset = 0,
    ) -> LibraryPage:
        """Newest first; ``q`` searches titles and notes, ``tag`` and ``kind`` filter."""
        rows, total = await library.browse(db, tenant_id=tenant_id, tag=tag, kind=kind, text=q, limit=limit, offset=offset)
        return LibraryPage(items=await _library_out(db, tenant_id, rows), total=total, limit=limit, offset=offset)

    @post("/", guards=[requires("qa.evaluate")])
    async def file(self, data: JSONBody[LibraryCreate], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal,
                   runtime: RuntimeDep) -> LibraryItemOut:
        row = await library.file_item(db, tenant_id=tenant_id, call_id=data.call_id, kind=data.kind, title=data.title, notes=data.notes,
                                      tags=data.tags, actor=principal.actor, now=now_of(runtime))
        return (await _library_out(db, tenant_id, [row]))[0]

    @get("/{library_item_id:uuid}", guards=[requires_any("qa.own", *READERS)])
    async def get_one(self, library_item_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> LibraryItemOut:
        return (await _library_out(db, tenant_id, [await library.get_item(db, tenant_id=tenant_id, item_id=library_item_id)]))[0]

    @patch("/{library_item_id:uuid}", guards=[requires("qa.evaluate")])
    async def update(self, library_item_id: FromPath[uuid.UUID], data: JSONBody[LibraryUpdate], db: DbSession, tenant_id: TenantId,
                     runtime: RuntimeDep) -> LibraryItemOut:
        row = await library.update_item(db, tenant_id=tenant_id, item_id=library_item_id, kind=data.kind, title=data.title, notes=data.notes,
                                        tags=data.tags, now=now_of(runtime))
        return (await _library_out(db, tenant_id, [row]))[0]

    @delete("/{library_item_id:uuid}", guards=[requires("qa.evaluate")], status_code=204)
    async def remove(self, library_item_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId, principal: CurrentPrincipal) -> None:
        await library.remove_item(db, tenant_id=tenant_id, item_id=library_item_id, actor=principal.actor)

    @post("/{library_item_id:uuid}/playback", status_code=201, guards=[requires_any("qa.own", *READERS)])
    async def playback(self, library_item_id: FromPath[uuid.UUID], request: Request, db: DbSession, tenant_id: TenantId,
                       principal: CurrentPrincipal, runtime: RuntimeDep) -> PlaybackOut:
        """A listen link for every party of the library call (the shape of ``POST /api/v1/calls/{id}/playback``):
        agents play exemplary calls that are not their own; each link is audited like any other."""
        item = await library.get_item(db, tenant_id=tenant_id, item_id=library_item_id)
        started_at = await db.scalar(select(Call.started_at).where(Call.tenant_id == tenant_id, Call.id == item.call_id))
        now = utcnow()
        parties, expires_at = [], now
        for recording in await library.library_recordings(db, tenant_id=tenant_id, item_id=library_item_id):
            link = await links.issue_link(db, tenant_id=tenant_id, recording=recording, principal=principal, purpose="listen",
                                          settings=runtime.settings, now=now, ip=request.client.host if request.client else None)
            expires_at = link.expires_at
            parties.append(PartyLinkOut(recording.party, recording.id, recording.media_type, recording.duration_ms, link.url))
        return PlaybackOut(call_id=item.call_id, serial=call_serial(item.call_id, started_at), expires_at=expires_at, parties=parties)

    @get("/{library_item_id:uuid}/recordings", guards=[requires_any("qa.own", *READERS)])
    async def recordings(self, library_item_id: FromPath[uuid.UUID], db: DbSession, tenant_id: TenantId) -> list[RecordingMeta]:
        """The recordings of the item's call, for playback: agents may play library calls
        that are not their own; the playback link of each comes from the recordings API by id."""
        return [_recording_out(r) for r in await library.library_recordings(db, tenant_id=tenant_id, item_id=library_item_id)]


# --- reports ------------------------------------------------------------------------------------------------


class ReportsController(Controller):
    path = "/api/v1/qa/reports"
    tags = ["quality assurance"]

    @get("/", guards=[requires("qa.read")])
    async def report(
        self, db: DbSession, tenant_id: TenantId,
        runtime: RuntimeDep,
        start: Annotated[datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[datetime | None, QueryParameter(name="to")] = None,
        group_by: Annotated[Literal["agent", "team", "queue", "question"], QueryParameter()] = "agent",
        bucket: Annotated[Literal["day", "week", "month"], QueryParameter()] = "week",
        scorecard_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
    ) -> reports.Report:
        """Average score, evaluation count and auto-fail rate per group and time bucket, for
        evaluations submitted in [from, to) (default: the 30 days up to now)."""
        end = end or now_of(runtime)
        start = start or end - timedelta(days=30)
        return await reports.report(db, tenant_id=tenant_id, group_by=group_by, bucket=bucket, start=start, end=end, scorecard_id=scorecard_id)


def _evaluated(tenant_id: uuid.UUID) -> Any:
    """The call has a scored evaluation (submitted or later; calibrations and drafts do not count)."""
    return exists().where(
        QaEvaluationCall.tenant_id == tenant_id, QaEvaluationCall.call_id == Call.id,
        QaEvaluation.tenant_id == QaEvaluationCall.tenant_id, QaEvaluation.id == QaEvaluationCall.evaluation_id,
        QaEvaluation.status != "draft", QaEvaluation.calibration_id.is_(None),
    )


def install(runtime: Runtime) -> list[Any]:
    # The recordings search's "QA status" filter (kefu.tenants.recordings.hooks).
    register_qa_status_filter("evaluated", _evaluated)
    register_qa_status_filter("unevaluated", lambda tenant_id: ~_evaluated(tenant_id))
    if "worker" in runtime.process_roles:
        interval = float(runtime.components.get("qa.sampling_interval_s") or runtime.settings.qa_sampling_interval_s)
        runtime.add_service(sampling.SamplingScheduler(runtime, interval_s=interval))
    return [ScorecardsController, EvaluationsController, MyEvaluationsController, SamplingController, CalibrationController, LibraryController,
            ReportsController]
