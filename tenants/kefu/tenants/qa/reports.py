"""QA reports: average score, evaluation count and auto-fail rate per agent, team, queue or
question, per day, week or month (docs/qa.md).

What counts: scored evaluations (submitted, acknowledged, disputed, final; calibrations
left out, they measure reviewers, not agents) whose evaluation end time (``submitted_at``)
falls in [from, to).  Buckets are calendar days, weeks (Monday first) and months in the
tenant's time zone.  An auto-failed evaluation counts with its score, 0.  A team is the
agent's team now (``agents.team_id``); a queue is the queue of the earliest covered call.
Per question, the average is that of the question's scores (0..100, N/A left out) and
the auto-fail rate the share of its answers that failed it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.platform.problems import Problem
from kefu.tenants.models import Agent, Queue, Team
from kefu.tenants.qa import scoring
from kefu.tenants.qa.evaluations import SCORED
from kefu.tenants.qa.models import QaEvaluation, QaScorecardVersion
from kefu.tenants.qa.sampling import tenant_zone

GROUPS = ("agent", "team", "queue", "question")
BUCKETS = ("day", "week", "month")
MAX_DAYS = 366


class ReportRow(msgspec.Struct):
    bucket_start: datetime
    key: str | None  # agent, team, queue id, or "<scorecard id>:<question id>"; None: no team / no queue
    name: str | None
    evaluations: int  # per question: answers scored or failed
    average_score: float | None
    min_score: float | None
    max_score: float | None
    auto_failed: int
    auto_fail_rate: float


class BucketTotal(msgspec.Struct):
    bucket_start: datetime
    evaluations: int
    average_score: float | None
    auto_failed: int
    auto_fail_rate: float


class Report(msgspec.Struct):
    group_by: str
    bucket: str
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    time_zone: str
    rows: list[ReportRow]
    totals: list[BucketTotal]


def bucket_start(moment: datetime, bucket: str, zone: ZoneInfo) -> datetime:
    local: date = moment.astimezone(zone).date()
    if bucket == "week":
        local = local - timedelta(days=local.weekday())
    elif bucket == "month":
        local = local.replace(day=1)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def _stats(scores: list[float], failed: int) -> dict[str, Any]:
    count = len(scores)
    return {
        "average_score": round(sum(scores) / count, 2) if count else None,
        "min_score": min(scores) if scores else None, "max_score": max(scores) if scores else None,
        "auto_failed": failed, "auto_fail_rate": round(failed / count, 4) if count else 0.0,
    }


async def report(
    session: AsyncSession, *, tenant_id: uuid.UUID, group_by: str, bucket: str, start: datetime, end: datetime,
    scorecard_id: uuid.UUID | None = None,
) -> Report:
    if group_by not in GROUPS:
        raise Problem(400, "invalid_group_by", f"group_by is one of {', '.join(GROUPS)}")
    if bucket not in BUCKETS:
        raise Problem(400, "invalid_bucket", f"bucket is one of {', '.join(BUCKETS)}")
    if start.tzinfo is None or end.tzinfo is None or not start < end or end - start > timedelta(days=MAX_DAYS):
        raise Problem(400, "invalid_period", f"from and to carry a time zone, from < to, at most {MAX_DAYS} days apart")
    zone = await tenant_zone(session, tenant_id=tenant_id)
    query = (
        select(QaEvaluation, Agent.display_name, Agent.team_id)
        .join(Agent, (Agent.tenant_id == QaEvaluation.tenant_id) & (Agent.id == QaEvaluation.agent_id))
        .where(
            QaEvaluation.tenant_id == tenant_id, QaEvaluation.status.in_(SCORED), QaEvaluation.calibration_id.is_(None),
            QaEvaluation.submitted_at >= start, QaEvaluation.submitted_at < end,
        )
    )
    if scorecard_id is not None:
        query = query.where(QaEvaluation.scorecard_id == scorecard_id)
    rows = (await session.execute(query)).all()
    names: dict[str | None, str | None] = {None: None}
    if group_by == "team":
        names.update({str(i): n for i, n in await session.execute(select(Team.id, Team.name).where(Team.tenant_id == tenant_id))})
    elif group_by == "queue":
        names.update({str(i): n for i, n in await session.execute(select(Queue.id, Queue.name).where(Queue.tenant_id == tenant_id))})
    scores: dict[tuple[datetime, str | None], list[float]] = defaultdict(list)
    failed: dict[tuple[datetime, str | None], int] = defaultdict(int)
    totals: dict[datetime, list[float]] = defaultdict(list)
    totals_failed: dict[datetime, int] = defaultdict(int)
    documents: dict[uuid.UUID, scoring.ScorecardDocument] = {}
    if group_by == "question":
        version_ids = {evaluation.scorecard_version_id for evaluation, _, _ in rows}
        for version in await session.scalars(select(QaScorecardVersion).where(
                QaScorecardVersion.tenant_id == tenant_id, QaScorecardVersion.id.in_(version_ids)).order_by(QaScorecardVersion.number)):
            documents[version.id] = scoring.load(version.document)
    for evaluation, agent_name, team_id in rows:
        assert evaluation.submitted_at is not None and evaluation.total_score is not None
        when = bucket_start(evaluation.submitted_at, bucket, zone)
        totals[when].append(evaluation.total_score)
        totals_failed[when] += int(evaluation.auto_failed)
        if group_by == "question":
            questions = scoring.questions_of(documents[evaluation.scorecard_version_id])
            for answer in evaluation.answers:
                question = questions.get(answer["question_id"])
                key = f"{evaluation.scorecard_id}:{answer['question_id']}"
                if question is not None:
                    names[key] = question.text  # versions are read oldest first: the newest text wins
                if answer.get("score") is not None:
                    scores[(when, key)].append(answer["score"])
                if question is not None and scoring.is_failing(question, answer["value"]):
                    failed[(when, key)] += 1
            continue
        key = {"agent": str(evaluation.agent_id), "team": str(team_id) if team_id else None,
               "queue": str(evaluation.queue_id) if evaluation.queue_id else None}[group_by]
        if group_by == "agent":
            names[key] = agent_name
        scores[(when, key)].append(evaluation.total_score)
        failed[(when, key)] += int(evaluation.auto_failed)
    report_rows = [
        ReportRow(bucket_start=when, key=key, name=names.get(key), evaluations=len(values), **_stats(values, failed[(when, key)]))
        for (when, key), values in scores.items()
    ]
    report_rows.sort(key=lambda r: (r.bucket_start, r.name or "", r.key or ""))
    bucket_totals = [
        BucketTotal(bucket_start=when, evaluations=len(values), average_score=_stats(values, 0)["average_score"],
                    auto_failed=totals_failed[when], auto_fail_rate=round(totals_failed[when] / len(values), 4))
        for when, values in sorted(totals.items())
    ]
    return Report(group_by=group_by, bucket=bucket, start=start, end=end, time_zone=zone.key, rows=report_rows, totals=bucket_totals)
