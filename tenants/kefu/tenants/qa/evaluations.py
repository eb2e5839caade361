"""Evaluations of recorded calls and their lifecycle (docs/qa.md):

    draft --submit--> submitted --agent--> acknowledged
                                 --agent--> disputed --second review--> final

A reviewer opens a draft (the evaluation start time), answers, and submits (the end
time); the server scores the answers with the exact scorecard version the draft was opened
with.  The agent acknowledges or disputes (with a reason); a dispute goes to a second
review by another reviewer, who upholds the score or changes the answers (the first
answers and score are kept).  A calibration evaluation stops at submitted.

Every check happens before anything is written, and a request's transaction rolls back
on any problem, so a refused request stores nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.identity.principal import Principal
from kefu.platform.models import User
from kefu.platform.problems import Problem, not_found
from kefu.tenants import agents as agents_service
from kefu.tenants.models import Agent, Call, Recording
from kefu.tenants.qa import scoring
from kefu.tenants.qa.calls import CoveredCalls, call_serial, covered_calls, talk_seconds
from kefu.tenants.qa.models import QaCalibration, QaEvaluation, QaEvaluationCall, QaScorecard, QaScorecardVersion, QaWorkItem
from kefu.tenants.qa.scorecards import latest_version

QA_TYPES = ("random", "targeted", "complaint", "new_hire", "calibration", "second_review")
STATUSES = ("draft", "submitted", "acknowledged", "disputed", "final")
# What an agent sees of its own evaluations: never drafts, never calibrations.
AGENT_VISIBLE = ("submitted", "acknowledged", "disputed", "final")
# Scored evaluations: what reports average.
SCORED = AGENT_VISIBLE
MAX_COMMENTS = 4000


def check_qa_type(value: str, *, allow_calibration: bool = False) -> str:
    if value not in QA_TYPES or (value == "calibration" and not allow_calibration):
        allowed = [t for t in QA_TYPES if allow_calibration or t != "calibration"]
        raise Problem(400, "invalid_qa_type", f"qa_type must be one of {', '.join(allowed)} (calibrations start from a calibration session)")
    return value


def _business_type(value: str | None, covered: CoveredCalls) -> str:
    text = (value or "").strip()
    if len(text) > 64:
        raise Problem(400, "invalid_business_type", "the business type may have at most 64 characters")
    return text or (covered.queue_name or "general")[:64]


def _comments(value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_COMMENTS:
        raise Problem(400, "invalid_comments", f"comments may have at most {MAX_COMMENTS} characters")
    return text or None


# --- opening a draft ---------------------------------------------------------------------


async def create_evaluation(
    session: AsyncSession, *, tenant_id: uuid.UUID, reviewer_user_id: uuid.UUID, scorecard_id: uuid.UUID | None, call_ids: list[uuid.UUID],
    qa_type: str, business_type: str | None, comments: str | None, now: datetime, calibration: QaCalibration | None = None,
) -> QaEvaluation:
    """A draft of ``reviewer_user_id`` on the scorecard's latest published version (or the
    calibration's version).  The calls are checked first (kefu.tenants.qa.calls)."""
    check_qa_type(qa_type, allow_calibration=calibration is not None)
    if calibration is not None:
        version = await session.scalar(
            select(QaScorecardVersion).where(QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id == calibration.scorecard_version_id)
        )
        assert version is not None
    else:
        assert scorecard_id is not None
        _, version = await latest_version(session, tenant_id=tenant_id, scorecard_id=scorecard_id)
    covered = await covered_calls(session, tenant_id=tenant_id, call_ids=call_ids)
    evaluation = QaEvaluation(
        tenant_id=tenant_id, scorecard_id=version.scorecard_id, scorecard_version_id=version.id, status="draft", qa_type=qa_type,
        business_type=_business_type(business_type, covered), reviewer_user_id=reviewer_user_id, agent_id=covered.agent.id,
        queue_id=covered.queue_id, start_serial=covered.start_serial, end_serial=covered.end_serial, call_duration_s=covered.duration_s,
        answers=[], comments=_comments(comments), started_at=now, updated_at=now,
        calibration_id=calibration.id if calibration is not None else None,
    )
    session.add(evaluation)
    await session.flush()
    for call in covered.calls:
        session.add(QaEvaluationCall(tenant_id=tenant_id, evaluation_id=evaluation.id, call_id=call.id))
    await session.flush()
    return evaluation


# --- finding one ----------------------------------------------------------------------------


def reviewer_visibility(principal: Principal) -> Any:
    """What reviewers and supervisors see: every evaluation of the tenant, except other
    reviewers' calibration evaluations (those are compared through the calibration's
    results, once the viewer has submitted its own); ``qa.manage`` sees everything."""
    if principal.can("qa.manage"):
        return None
    return or_(QaEvaluation.calibration_id.is_(None), QaEvaluation.reviewer_user_id == principal.user_id)


async def own_agent_id(session: AsyncSession, *, tenant_id: uuid.UUID, principal: Principal) -> uuid.UUID:
    """The signed-in agent's seat; a user without one owns no evaluation (a fresh id matches nothing)."""
    agent = await agents_service.agent_of_user(session, tenant_id=tenant_id, user_id=principal.user_id)
    return agent.id if agent is not None else uuid.uuid4()


async def get_for_reviewer(
    session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, lock: bool = False
) -> QaEvaluation:
    query = select(QaEvaluation).where(QaEvaluation.tenant_id == tenant_id, QaEvaluation.id == evaluation_id)
    visibility = reviewer_visibility(principal)
    if visibility is not None:
        query = query.where(visibility)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("evaluation")
    return row


async def get_for_agent(
    session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, lock: bool = False
) -> QaEvaluation:
    """The agent's own evaluation: another agent's, a draft or a calibration answers 404 like a missing one."""
    agent_id = await own_agent_id(session, tenant_id=tenant_id, principal=principal)
    query = select(QaEvaluation).where(
        QaEvaluation.tenant_id == tenant_id, QaEvaluation.id == evaluation_id, QaEvaluation.agent_id == agent_id,
        QaEvaluation.status.in_(AGENT_VISIBLE), QaEvaluation.calibration_id.is_(None),
    )
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("evaluation")
    return row


async def version_document(session: AsyncSession, *, tenant_id: uuid.UUID, evaluation: QaEvaluation) -> scoring.ScorecardDocument:
    document = await session.scalar(
        select(QaScorecardVersion.document).where(QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id == evaluation.scorecard_version_id)
    )
    assert document is not None
    return scoring.load(document)


# --- the reviewer's draft ---------------------------------------------------------------------


def _own_draft(evaluation: QaEvaluation, principal: Principal) -> QaEvaluation:
    if evaluation.reviewer_user_id != principal.user_id:
        raise Problem(403, "not_your_evaluation", "only the reviewer who opened this evaluation may change it")
    if evaluation.status != "draft":
        raise Problem(409, "evaluation_not_draft", f"the evaluation is {evaluation.status}; only a draft can be changed")
    return evaluation


async def update_draft(
    session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, answers: list[scoring.AnswerIn] | None,
    comments: str | None, business_type: str | None, qa_type: str | None, now: datetime,
) -> QaEvaluation:
    """Save answers (all of them so far: the list replaces the stored one), comments, business
    or QA type.  Answers are checked (question ids, ranges, N/A) but need not be complete."""
    evaluation = _own_draft(await get_for_reviewer(session, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, lock=True), principal)
    if answers is not None:
        document = await version_document(session, tenant_id=tenant_id, evaluation=evaluation)
        evaluation.answers = scoring.check_answers(document, answers)
    if comments is not None:
        evaluation.comments = _comments(comments)
    if business_type is not None:
        text = business_type.strip()
        if not text or len(text) > 64:
            raise Problem(400, "invalid_business_type", "the business type must have 1 to 64 characters")
        evaluation.business_type = text
    if qa_type is not None:
        if evaluation.calibration_id is not None:
            if qa_type != "calibration":
                raise Problem(400, "invalid_qa_type", "a calibration evaluation keeps the qa_type calibration")
        else:
            evaluation.qa_type = check_qa_type(qa_type)
    evaluation.updated_at = now
    await session.flush()
    return evaluation


async def submit(
    session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, answers: list[scoring.AnswerIn] | None,
    comments: str | None, now: datetime,
) -> QaEvaluation:
    """Score and submit the draft (``answers`` given here replace the saved ones).  Every
    required question must be answered; the score is the server's.  Work items of the
    reviewer for the covered calls become done."""
    evaluation = _own_draft(await get_for_reviewer(session, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, lock=True), principal)
    if evaluation.calibration_id is not None:
        status = await session.scalar(select(QaCalibration.status).where(QaCalibration.tenant_id == tenant_id, QaCalibration.id == evaluation.calibration_id))
        if status == "closed":
            raise Problem(409, "calibration_closed", "the calibration session is closed")
    document = await version_document(session, tenant_id=tenant_id, evaluation=evaluation)
    if answers is not None:
        checked = scoring.check_answers(document, answers)
    else:
        checked = scoring.check_answers(document, [scoring.AnswerIn(a["question_id"], a["value"], a.get("comment")) for a in evaluation.answers])
    result = scoring.score(document, checked)
    if comments is not None:
        evaluation.comments = _comments(comments)
    evaluation.answers = result.answers
    evaluation.total_score, evaluation.grade, evaluation.auto_failed = result.total, result.grade, result.auto_failed
    evaluation.status, evaluation.submitted_at, evaluation.updated_at = "submitted", now, now
    await session.flush()
    if evaluation.calibration_id is None:
        await _close_work_items(session, tenant_id=tenant_id, evaluation=evaluation, now=now)
    await audit.record(session, tenant_id=tenant_id, actor=principal.actor, action="qa.evaluation.submitted", target=f"qa_evaluation:{evaluation.id}",
                       detail={"total_score": result.total, "grade": result.grade, "auto_failed": result.auto_failed, "agent_id": str(evaluation.agent_id)})
    return evaluation


async def _close_work_items(session: AsyncSession, *, tenant_id: uuid.UUID, evaluation: QaEvaluation, now: datetime) -> None:
    """The reviewer's open work items for the covered calls (or opened from this evaluation) are done."""
    call_ids = select(QaEvaluationCall.call_id).where(QaEvaluationCall.tenant_id == tenant_id, QaEvaluationCall.evaluation_id == evaluation.id)
    await session.execute(
        update(QaWorkItem).where(
            QaWorkItem.tenant_id == tenant_id, QaWorkItem.status == "open", QaWorkItem.reviewer_user_id == evaluation.reviewer_user_id,
            or_(QaWorkItem.call_id.in_(call_ids), QaWorkItem.evaluation_id == evaluation.id),
        ).values(status="done", done_at=now, evaluation_id=evaluation.id)
    )


async def discard(session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal) -> None:
    """Delete the reviewer's own draft (its work item goes back to open)."""
    evaluation = _own_draft(await get_for_reviewer(session, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, lock=True), principal)
    await session.execute(
        update(QaWorkItem).where(QaWorkItem.tenant_id == tenant_id, QaWorkItem.evaluation_id == evaluation.id).values(evaluation_id=None)
    )
    await session.execute(delete(QaEvaluationCall).where(QaEvaluationCall.tenant_id == tenant_id, QaEvaluationCall.evaluation_id == evaluation.id))
    await session.delete(evaluation)
    await session.flush()


# --- the agent's answer ---------------------------------------------------------------------


def _submitted(evaluation: QaEvaluation) -> QaEvaluation:
    if evaluation.status != "submitted":
        raise Problem(409, "evaluation_not_submitted", f"the evaluation is {evaluation.status}; only a submitted one can be acknowledged or disputed")
    return evaluation


async def acknowledge(session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, now: datetime) -> QaEvaluation:
    evaluation = _submitted(await get_for_agent(session, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, lock=True))
    evaluation.status, evaluation.acknowledged_at, evaluation.updated_at = "acknowledged", now, now
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=principal.actor, action="qa.evaluation.acknowledged", target=f"qa_evaluation:{evaluation.id}")
    return evaluation


async def dispute(
    session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, reason: str, now: datetime
) -> QaEvaluation:
    text = reason.strip()
    if not text or len(text) > 2000:
        raise Problem(400, "dispute_reason_required", "a dispute needs a reason of 1 to 2000 characters")
    evaluation = _submitted(await get_for_agent(session, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, lock=True))
    evaluation.status, evaluation.disputed_at, evaluation.dispute_reason, evaluation.updated_at = "disputed", now, text, now
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=principal.actor, action="qa.evaluation.disputed", target=f"qa_evaluation:{evaluation.id}",
                       detail={"reason": text})
    return evaluation


# --- second review ------------------------------------------------------------------------------


async def second_review(
    session: AsyncSession, *, tenant_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Principal, outcome: str,
    answers: list[scoring.AnswerIn] | None, comments: str | None, now: datetime,
) -> QaEvaluation:
    """A disputed evaluation reviewed again by another reviewer: ``upheld`` keeps the score,
    ``changed`` rescores the new answers with the same scorecard version (the first
    answers, score and grade are kept in ``original_*``).  Either way it becomes final."""
    evaluation = await get_for_reviewer(session, tenant_id=tenant_id, evaluation_id=evaluation_id, principal=principal, lock=True)
    if evaluation.status != "disputed":
        raise Problem(409, "evaluation_not_disputed", f"the evaluation is {evaluation.status}; only a disputed one gets a second review")
    if evaluation.reviewer_user_id == principal.user_id:
        raise Problem(409, "second_reviewer_is_first_reviewer", "the second review must be done by another reviewer")
    if outcome not in ("upheld", "changed"):
        raise Problem(400, "invalid_outcome", "the outcome is upheld or changed")
    text = _comments(comments)
    if outcome == "changed":
        if not answers:
            raise Problem(400, "answers_required", "a changed second review gives the new answers")
        document = await version_document(session, tenant_id=tenant_id, evaluation=evaluation)
        result = scoring.score(document, scoring.check_answers(document, answers))
        evaluation.original_answers, evaluation.original_total_score, evaluation.original_grade = (
            evaluation.answers, evaluation.total_score, evaluation.grade
        )
        evaluation.answers = result.answers
        evaluation.total_score, evaluation.grade, evaluation.auto_failed = result.total, result.grade, result.auto_failed
    elif answers:
        raise Problem(400, "answers_not_allowed", "an upheld second review keeps the answers; send none")
    evaluation.status, evaluation.second_reviewer_user_id, evaluation.second_reviewed_at = "final", principal.user_id, now
    evaluation.second_review_outcome, evaluation.second_review_comments, evaluation.updated_at = outcome, text, now
    await session.flush()
    await audit.record(
        session, tenant_id=tenant_id, actor=principal.actor, action="qa.evaluation.second_reviewed", target=f"qa_evaluation:{evaluation.id}",
        detail={"outcome": outcome, "total_score": evaluation.total_score, "grade": evaluation.grade,
                "original_total_score": evaluation.original_total_score},
    )
    return evaluation


# --- searching --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Every field of the search; None: no condition."""

    serial: str | None = None
    start_serial: str | None = None
    end_serial: str | None = None
    call_id: uuid.UUID | None = None
    reviewer_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    qa_type: str | None = None
    business_type: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    grade: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None
    duration_min: int | None = None
    duration_max: int | None = None
    status: str | None = None
    scorecard_id: uuid.UUID | None = None
    queue_id: uuid.UUID | None = None
    auto_failed: bool | None = None
    comments: str | None = None


def _conditions(tenant_id: uuid.UUID, f: Filters) -> list[Any]:
    where: list[Any] = [QaEvaluation.tenant_id == tenant_id]
    if f.serial:
        # A serial names a call: the evaluations whose range of covered serials holds it.
        where.append((QaEvaluation.start_serial <= f.serial) & (QaEvaluation.end_serial >= f.serial))
    if f.call_id is not None:
        where.append(QaEvaluation.id.in_(select(QaEvaluationCall.evaluation_id).where(
            QaEvaluationCall.tenant_id == tenant_id, QaEvaluationCall.call_id == f.call_id)))
    pairs: list[tuple[Any, Any]] = [
        (f.reviewer_id, QaEvaluation.reviewer_user_id), (f.agent_id, QaEvaluation.agent_id), (f.qa_type, QaEvaluation.qa_type),
        (f.business_type, QaEvaluation.business_type), (f.grade, QaEvaluation.grade), (f.status, QaEvaluation.status),
        (f.scorecard_id, QaEvaluation.scorecard_id), (f.queue_id, QaEvaluation.queue_id), (f.auto_failed, QaEvaluation.auto_failed),
        (f.start_serial or None, QaEvaluation.start_serial), (f.end_serial or None, QaEvaluation.end_serial),
    ]
    where += [column == value for value, column in pairs if value is not None]
    if f.comments and f.comments.strip():
        # Case-insensitive "contains"; % and _ in the text match themselves (autoescape).
        where.append(func.lower(QaEvaluation.comments).contains(f.comments.strip().lower(), autoescape=True))
    ranges: list[tuple[Any, Any, Any]] = [
        (QaEvaluation.total_score, f.score_min, f.score_max), (QaEvaluation.started_at, f.started_from, f.started_to),
        (QaEvaluation.submitted_at, f.submitted_from, f.submitted_to), (QaEvaluation.call_duration_s, f.duration_min, f.duration_max),
    ]
    for column, low, high in ranges:
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    return where


def _listing(where: list[Any]) -> Select[Any]:
    return select(QaEvaluation).where(*where)


async def search(
    session: AsyncSession, *, tenant_id: uuid.UUID, filters: Filters, limit: int, offset: int, extra: list[Any] | None = None
) -> tuple[list[QaEvaluation], int]:
    """One page, newest first (by evaluation start time), and the total."""
    where = _conditions(tenant_id, filters) + list(extra or [])
    total = await session.scalar(select(func.count()).select_from(QaEvaluation).where(*where)) or 0
    rows = await session.scalars(_listing(where).order_by(QaEvaluation.started_at.desc(), QaEvaluation.id.desc()).limit(limit).offset(offset))
    return list(rows), total


# --- what the answers show --------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Display names and scorecard labels for a page of evaluations, read in a few queries."""

    agents: dict[uuid.UUID, str]
    users: dict[uuid.UUID, str]
    scorecards: dict[uuid.UUID, str]
    versions: dict[uuid.UUID, int]
    call_ids: dict[uuid.UUID, list[uuid.UUID]]


async def names_for(session: AsyncSession, *, tenant_id: uuid.UUID, rows: list[QaEvaluation]) -> Names:
    if not rows:
        return Names({}, {}, {}, {}, {})
    agent_ids = {r.agent_id for r in rows}
    user_ids = {r.reviewer_user_id for r in rows} | {r.second_reviewer_user_id for r in rows if r.second_reviewer_user_id}
    agents = dict((await session.execute(select(Agent.id, Agent.display_name).where(Agent.tenant_id == tenant_id, Agent.id.in_(agent_ids)))).all())
    users = dict((await session.execute(select(User.id, User.display_name).where(User.tenant_id == tenant_id, User.id.in_(user_ids)))).all())
    scorecards = dict((await session.execute(
        select(QaScorecard.id, QaScorecard.name).where(QaScorecard.tenant_id == tenant_id, QaScorecard.id.in_({r.scorecard_id for r in rows}))
    )).all())
    versions = dict((await session.execute(
        select(QaScorecardVersion.id, QaScorecardVersion.number).where(
            QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id.in_({r.scorecard_version_id for r in rows}))
    )).all())
    call_ids: dict[uuid.UUID, list[uuid.UUID]] = {r.id: [] for r in rows}
    links = await session.execute(
        select(QaEvaluationCall.evaluation_id, QaEvaluationCall.call_id)
        .join(Call, (Call.tenant_id == QaEvaluationCall.tenant_id) & (Call.id == QaEvaluationCall.call_id))
        .where(QaEvaluationCall.tenant_id == tenant_id, QaEvaluationCall.evaluation_id.in_(call_ids))
        .order_by(Call.started_at, Call.id)
    )
    for evaluation_id, call_id in links:
        call_ids[evaluation_id].append(call_id)
    return Names(agents, users, scorecards, versions, call_ids)


@dataclass(frozen=True)
class CoveredCallView:
    call: Call
    serial: str
    duration_s: int
    recordings: list[Recording]


async def covered_call_views(session: AsyncSession, *, tenant_id: uuid.UUID, call_ids: list[uuid.UUID]) -> list[CoveredCallView]:
    """The covered calls (earliest first) with their serials and recordings: what a
    "listen and score" page plays."""
    calls = list(await session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.id.in_(call_ids)).order_by(Call.started_at, Call.id)))
    recordings: dict[uuid.UUID, list[Recording]] = {c.id: [] for c in calls}
    for recording in await session.scalars(
        select(Recording).where(Recording.tenant_id == tenant_id, Recording.call_id.in_(call_ids)).order_by(Recording.party)
    ):
        recordings[recording.call_id].append(recording)
    return [CoveredCallView(c, call_serial(c.id, c.started_at), talk_seconds(c), recordings[c.id]) for c in calls]
