"""Calibration sessions: several reviewers score one call independently with one scorecard
version, then compare (docs/qa.md).

Each invited reviewer opens its own evaluation (qa_type ``calibration``) from the session.
Until a reviewer has submitted its own, it sees neither the others' answers nor the
results (403 ``calibration_results_hidden``); people who are not participants and hold
``qa.read`` see the results at any time.  The results show, per question, every
reviewer's answer and the spread of their scores, and the spread of the total scores.
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform import audit
from kefu.platform.identity.principal import Principal
from kefu.platform.models import User
from kefu.platform.problems import Problem, not_found
from kefu.tenants.models import Call
from kefu.tenants.qa import scoring
from kefu.tenants.qa.calls import call_serial, covered_calls
from kefu.tenants.qa.evaluations import create_evaluation
from kefu.tenants.qa.models import QaCalibration, QaCalibrationReviewer, QaEvaluation, QaScorecardVersion
from kefu.tenants.qa.sampling import check_reviewers
from kefu.tenants.qa.scorecards import latest_version


async def create_calibration(
    session: AsyncSession, *, tenant_id: uuid.UUID, call_id: uuid.UUID, scorecard_id: uuid.UUID, reviewer_ids: list[uuid.UUID],
    title: str | None, actor: str, now: datetime,
) -> QaCalibration:
    _, version = await latest_version(session, tenant_id=tenant_id, scorecard_id=scorecard_id)
    covered = await covered_calls(session, tenant_id=tenant_id, call_ids=[call_id])
    reviewers = await check_reviewers(session, tenant_id=tenant_id, reviewer_ids=reviewer_ids)
    if len(reviewers) < 2:
        raise Problem(400, "invalid_reviewers", "a calibration needs at least two reviewers")
    text = (title or "").strip() or f"Calibration {covered.start_serial}"
    if len(text) > 200:
        raise Problem(400, "invalid_title", "the title may have at most 200 characters")
    calibration = QaCalibration(tenant_id=tenant_id, title=text, call_id=call_id, scorecard_version_id=version.id, status="open",
                                created_by=actor, created_at=now)
    session.add(calibration)
    await session.flush()
    session.add_all(QaCalibrationReviewer(tenant_id=tenant_id, calibration_id=calibration.id, reviewer_user_id=r) for r in reviewers)
    await session.flush()
    await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.calibration.created", target=f"qa_calibration:{calibration.id}",
                       detail={"call_id": str(call_id), "reviewers": [str(r) for r in reviewers]})
    return calibration


async def get_calibration(session: AsyncSession, *, tenant_id: uuid.UUID, calibration_id: uuid.UUID, lock: bool = False) -> QaCalibration:
    query = select(QaCalibration).where(QaCalibration.tenant_id == tenant_id, QaCalibration.id == calibration_id)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("calibration")
    return row


async def list_calibrations(session: AsyncSession, *, tenant_id: uuid.UUID, status: str) -> list[QaCalibration]:
    query = select(QaCalibration).where(QaCalibration.tenant_id == tenant_id)
    if status != "all":
        query = query.where(QaCalibration.status == status)
    return list(await session.scalars(query.order_by(QaCalibration.created_at.desc(), QaCalibration.id).limit(200)))


@dataclass(frozen=True)
class Participant:
    user_id: uuid.UUID
    name: str
    evaluation: QaEvaluation | None

    @property
    def submitted(self) -> bool:
        return self.evaluation is not None and self.evaluation.status != "draft"


async def participants(session: AsyncSession, *, tenant_id: uuid.UUID, calibration: QaCalibration) -> list[Participant]:
    rows = (await session.execute(
        select(QaCalibrationReviewer.reviewer_user_id, User.display_name)
        .join(User, (User.tenant_id == QaCalibrationReviewer.tenant_id) & (User.id == QaCalibrationReviewer.reviewer_user_id))
        .where(QaCalibrationReviewer.tenant_id == tenant_id, QaCalibrationReviewer.calibration_id == calibration.id)
        .order_by(User.display_name, User.id)
    )).all()
    evaluations = {e.reviewer_user_id: e for e in await session.scalars(
        select(QaEvaluation).where(QaEvaluation.tenant_id == tenant_id, QaEvaluation.calibration_id == calibration.id)
    )}
    return [Participant(user_id, name, evaluations.get(user_id)) for user_id, name in rows]


async def open_evaluation(
    session: AsyncSession, *, tenant_id: uuid.UUID, calibration_id: uuid.UUID, principal: Principal, now: datetime
) -> tuple[QaEvaluation, bool]:
    """The caller's own evaluation in the session, opened now if it has none: (evaluation, created)."""
    calibration = await get_calibration(session, tenant_id=tenant_id, calibration_id=calibration_id, lock=True)
    invited = await session.scalar(select(QaCalibrationReviewer.id).where(
        QaCalibrationReviewer.tenant_id == tenant_id, QaCalibrationReviewer.calibration_id == calibration.id,
        QaCalibrationReviewer.reviewer_user_id == principal.user_id,
    ))
    if invited is None:
        raise Problem(403, "not_a_participant", "only the reviewers invited to this calibration score it")
    existing = await session.scalar(select(QaEvaluation).where(
        QaEvaluation.tenant_id == tenant_id, QaEvaluation.calibration_id == calibration.id, QaEvaluation.reviewer_user_id == principal.user_id,
    ))
    if existing is not None:
        return existing, False
    if calibration.status != "open":
        raise Problem(409, "calibration_closed", "the calibration session is closed")
    evaluation = await create_evaluation(
        session, tenant_id=tenant_id, reviewer_user_id=principal.user_id, scorecard_id=None, call_ids=[calibration.call_id],
        qa_type="calibration", business_type=None, comments=None, now=now, calibration=calibration,
    )
    return evaluation, True


async def close(session: AsyncSession, *, tenant_id: uuid.UUID, calibration_id: uuid.UUID, actor: str, now: datetime) -> QaCalibration:
    """No more evaluations or submissions (idempotent)."""
    calibration = await get_calibration(session, tenant_id=tenant_id, calibration_id=calibration_id, lock=True)
    if calibration.status != "closed":
        calibration.status, calibration.closed_at = "closed", now
        await session.flush()
        await audit.record(session, tenant_id=tenant_id, actor=actor, action="qa.calibration.closed", target=f"qa_calibration:{calibration.id}")
    return calibration


def spread(values: list[float]) -> dict[str, float | None]:
    """min, max, range (max - min), mean and population standard deviation; None when empty."""
    if not values:
        return {"min": None, "max": None, "range": None, "mean": None, "stdev": None}
    return {
        "min": min(values), "max": max(values), "range": round(max(values) - min(values), 2),
        "mean": round(statistics.fmean(values), 2), "stdev": round(statistics.pstdev(values), 2),
    }


async def results(session: AsyncSession, *, tenant_id: uuid.UUID, calibration_id: uuid.UUID, principal: Principal) -> dict[str, Any]:
    """The submitted evaluations compared (see the module's docstring)."""
    calibration = await get_calibration(session, tenant_id=tenant_id, calibration_id=calibration_id)
    people = await participants(session, tenant_id=tenant_id, calibration=calibration)
    me = next((p for p in people if p.user_id == principal.user_id), None)
    if me is not None and not me.submitted:
        raise Problem(403, "calibration_results_hidden", "submit your own evaluation first; then you see the others'")
    version = await session.scalar(select(QaScorecardVersion).where(
        QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id == calibration.scorecard_version_id))
    assert version is not None
    document = scoring.load(version.document)
    done = [p for p in people if p.submitted and p.evaluation is not None]
    answers_of = {p.user_id: {a["question_id"]: a for a in p.evaluation.answers} for p in done if p.evaluation is not None}
    questions = []
    for section in document.sections:
        for question in section.questions:
            given = []
            for person in done:
                answer = answers_of[person.user_id].get(question.id or "")
                given.append({
                    "reviewer_id": str(person.user_id), "reviewer_name": person.name,
                    "value": None if answer is None else answer["value"], "score": None if answer is None else answer["score"],
                    "comment": None if answer is None else answer.get("comment"),
                })
            scores = [g["score"] for g in given if g["score"] is not None]
            values = {str(g["value"]) for g in given if g["value"] is not None}
            questions.append({
                "question_id": question.id, "section_id": section.id, "text": question.text, "type": question.type,
                "answers": given, "spread": spread(scores), "agreed": len(values) <= 1,
            })
    totals = [{"reviewer_id": str(p.user_id), "reviewer_name": p.name, "total_score": p.evaluation.total_score,
               "grade": p.evaluation.grade, "auto_failed": p.evaluation.auto_failed} for p in done if p.evaluation is not None]
    return {
        "calibration_id": str(calibration.id), "call_serial": call_serial(calibration.call_id, await _call_start(session, tenant_id, calibration)),
        "scorecard_version_id": str(version.id), "submitted": len(done), "invited": len(people),
        "questions": questions, "totals": totals, "total_spread": spread([t["total_score"] for t in totals if t["total_score"] is not None]),
    }


async def _call_start(session: AsyncSession, tenant_id: uuid.UUID, calibration: QaCalibration) -> datetime:
    started = await session.scalar(select(Call.started_at).where(Call.tenant_id == tenant_id, Call.id == calibration.call_id))
    assert started is not None
    return started
