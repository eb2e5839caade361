"""Request and response types of the QA API, one per operation (docs/qa.md has examples)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from kefu.tenants.qa.scoring import AnswerIn, ScorecardDocument
from kefu.tenants.schemas import RecordingMeta, Request

QaType = Literal["random", "targeted", "complaint", "new_hire", "calibration", "second_review"]


# --- scorecards -------------------------------------------------------------------------------


class ScorecardCreate(Request):
    name: str
    document: ScorecardDocument
    description: str | None = None


class ScorecardUpdate(Request):
    name: str | None = None
    description: str | None = None
    document: ScorecardDocument | None = None


class ScorecardOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    description: str | None
    status: str  # active | retired
    draft: dict[str, Any]
    draft_updated_at: datetime
    published_version: int | None
    retired_at: datetime | None
    created_by: str
    created_at: datetime


class ScorecardVersionOut(msgspec.Struct):
    id: uuid.UUID
    scorecard_id: uuid.UUID
    number: int
    name: str
    document: dict[str, Any]
    published_at: datetime
    published_by: str


# --- evaluations ------------------------------------------------------------------------------


class EvaluationCreate(Request):
    scorecard_id: uuid.UUID
    call_ids: list[uuid.UUID]
    qa_type: QaType = "random"
    business_type: str | None = None  # default: the earliest call's queue name
    comments: str | None = None


class EvaluationUpdate(Request):
    answers: list[AnswerIn] | None = None  # replaces the saved answers
    comments: str | None = None
    business_type: str | None = None
    qa_type: QaType | None = None


class EvaluationSubmit(Request):
    answers: list[AnswerIn] | None = None  # None: the saved answers
    comments: str | None = None


class DisputeIn(Request):
    reason: str


class SecondReviewIn(Request):
    outcome: Literal["upheld", "changed"]
    answers: list[AnswerIn] | None = None  # the full new answers when changed
    comments: str | None = None


class AnswerOut(msgspec.Struct):
    question_id: str
    value: str | int  # "yes" | "no" | "na" | an integer
    comment: str | None
    score: float | None  # 0..100 once scored; None for N/A or in a draft


class CoveredCallOut(msgspec.Struct):
    call_id: uuid.UUID
    serial: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: int
    queue_id: uuid.UUID | None
    caller_name: str | None
    disposition_code: str | None
    recordings: list[RecordingMeta]


class EvaluationSummary(msgspec.Struct):
    id: uuid.UUID
    status: str
    scorecard_id: uuid.UUID
    scorecard_name: str | None
    scorecard_version_id: uuid.UUID
    scorecard_version: int | None
    qa_type: str
    business_type: str
    reviewer_id: uuid.UUID
    reviewer_name: str | None
    agent_id: uuid.UUID
    agent_name: str | None
    queue_id: uuid.UUID | None
    start_serial: str
    end_serial: str
    call_ids: list[uuid.UUID]
    call_duration_s: int
    total_score: float | None
    grade: str | None
    auto_failed: bool
    started_at: datetime  # evaluation start time
    submitted_at: datetime | None  # evaluation end time
    comments: str | None
    acknowledged_at: datetime | None
    disputed_at: datetime | None
    dispute_reason: str | None
    second_reviewer_id: uuid.UUID | None
    second_reviewer_name: str | None
    second_reviewed_at: datetime | None
    second_review_outcome: str | None
    second_review_comments: str | None
    original_total_score: float | None
    original_grade: str | None
    calibration_id: uuid.UUID | None


class EvaluationOut(EvaluationSummary):
    """One evaluation with what a "listen and score" page needs: the scorecard version it
    is scored with, the answers, and the covered calls with their recordings."""

    answers: list[AnswerOut] = []
    original_answers: list[AnswerOut] | None = None
    scorecard: dict[str, Any] = {}
    calls: list[CoveredCallOut] = []


class EvaluationPage(msgspec.Struct):
    items: list[EvaluationSummary]
    total: int
    limit: int
    offset: int


# --- sampling and work lists ----------------------------------------------------------------------


class PolicyCreate(Request):
    name: str
    scorecard_id: uuid.UUID
    calls_per_agent: int
    reviewer_ids: list[uuid.UUID]
    qa_type: QaType = "random"
    period: Literal["day", "week", "month"] = "week"
    min_duration_s: int = 0
    queue_ids: list[uuid.UUID] = []
    disposition_codes: list[str] = []
    recorded_only: bool = True
    seed: int | None = None
    active: bool = True


class PolicyUpdate(Request):
    name: str | None = None
    scorecard_id: uuid.UUID | None = None
    calls_per_agent: int | None = None
    reviewer_ids: list[uuid.UUID] | None = None
    qa_type: QaType | None = None
    period: Literal["day", "week", "month"] | None = None
    min_duration_s: int | None = None
    queue_ids: list[uuid.UUID] | None = None
    disposition_codes: list[str] | None = None
    recorded_only: bool | None = None
    seed: int | None = None
    active: bool | None = None


class PolicyOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    scorecard_id: uuid.UUID
    qa_type: str
    calls_per_agent: int
    period: str
    min_duration_s: int
    queue_ids: list[uuid.UUID]
    disposition_codes: list[str]
    recorded_only: bool
    reviewer_ids: list[uuid.UUID]
    seed: int
    active: bool
    created_at: datetime


class PolicyRunIn(Request):
    at: datetime | None = None  # the period holding this moment (default: now)


class PolicyRunOut(msgspec.Struct):
    policy_id: uuid.UUID
    period_start: datetime
    period_end: datetime
    added: int


class WorkItemOut(msgspec.Struct):
    id: uuid.UUID
    status: str  # open | done
    policy_id: uuid.UUID
    policy_name: str
    scorecard_id: uuid.UUID
    qa_type: str
    period_start: datetime
    period_end: datetime
    reviewer_id: uuid.UUID
    call_id: uuid.UUID
    call_serial: str
    call_started_at: datetime
    call_duration_s: int
    queue_id: uuid.UUID | None
    queue_name: str | None
    agent_id: uuid.UUID
    agent_name: str | None
    evaluation_id: uuid.UUID | None
    evaluation_status: str | None
    created_at: datetime
    done_at: datetime | None


class WorkItemPage(msgspec.Struct):
    items: list[WorkItemOut]
    total: int
    limit: int
    offset: int


# --- calibration ----------------------------------------------------------------------------------


class CalibrationCreate(Request):
    call_id: uuid.UUID
    scorecard_id: uuid.UUID
    reviewer_ids: list[uuid.UUID]
    title: str | None = None


class CalibrationReviewerOut(msgspec.Struct):
    reviewer_id: uuid.UUID
    name: str
    submitted: bool


class CalibrationOut(msgspec.Struct):
    id: uuid.UUID
    title: str
    status: str  # open | closed
    call_id: uuid.UUID
    call_serial: str
    scorecard_id: uuid.UUID
    scorecard_version_id: uuid.UUID
    reviewers: list[CalibrationReviewerOut]
    created_by: str
    created_at: datetime
    closed_at: datetime | None


# --- library ----------------------------------------------------------------------------------------


class LibraryCreate(Request):
    call_id: uuid.UUID
    kind: Literal["excellent", "instructive"]
    title: str
    notes: str | None = None
    tags: list[str] = []


class LibraryUpdate(Request):
    kind: Literal["excellent", "instructive"] | None = None
    title: str | None = None
    notes: str | None = None
    tags: list[str] | None = None


class LibraryItemOut(msgspec.Struct):
    id: uuid.UUID
    call_id: uuid.UUID
    call_serial: str
    call_started_at: datetime
    call_duration_s: int
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    agent_name: str | None
    kind: str
    title: str
    notes: str | None
    tags: list[str]
    recording_ids: list[uuid.UUID]
    filed_by: str
    created_at: datetime
    updated_at: datetime


class LibraryPage(msgspec.Struct):
    items: list[LibraryItemOut]
    total: int
    limit: int
    offset: int
