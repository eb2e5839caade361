"""Tables of quality assurance (migration 0012): scorecards and their published versions,
evaluations of recorded calls, sampling policies and the work lists they fill, calibration
sessions and the exemplary-call library (docs/qa.md).

Every row is tenant-scoped and every reference carries the tenant (composite foreign keys
onto ``(tenant_id, id)``), so an evaluation can never name another tenant's call, agent,
reviewer or scorecard.  Nullable references have no ``ON DELETE`` action (a composite
``SET NULL`` would null ``tenant_id`` too): the services clear them first.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from kefu.platform.db.base import Base, TenantScoped, utcnow
from sqlalchemy import JSON, Boolean, Float, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column


def _tenant_fk(columns: list[str], table: str, *, cascade: bool = True) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", *columns], [f"{table}.tenant_id", f"{table}.id"], ondelete="CASCADE" if cascade else None
    )


class QaScorecard(TenantScoped, Base):
    """A scorecard template: its working draft (always valid: kefu.tenants.qa.scoring checks
    it when saved) and which version is the latest published one.  A retired scorecard takes
    no new evaluations; the evaluations made with it keep their version."""

    __tablename__ = "qa_scorecards"
    __table_args__ = (UniqueConstraint("tenant_id", "id"), UniqueConstraint("tenant_id", "name"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    draft: Mapped[dict[str, Any]] = mapped_column(JSON)
    draft_updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_version: Mapped[int | None] = mapped_column(Integer)  # None: never published
    # active | retired
    status: Mapped[str] = mapped_column(String(16), default="active")
    retired_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QaScorecardVersion(TenantScoped, Base):
    """A published version of a scorecard, never changed: an evaluation names the exact
    version it was scored with, so a later version never rewrites an old score."""

    __tablename__ = "qa_scorecard_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "scorecard_id", "number"),
        _tenant_fk(["scorecard_id"], "qa_scorecards"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scorecard_id: Mapped[uuid.UUID]
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(128))


class QaCalibration(TenantScoped, Base):
    """A calibration session: several reviewers score one call independently with one
    scorecard version; the results compare their answers question by question."""

    __tablename__ = "qa_calibrations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _tenant_fk(["call_id"], "calls"),
        _tenant_fk(["scorecard_version_id"], "qa_scorecard_versions"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    call_id: Mapped[uuid.UUID] = mapped_column(index=True)
    scorecard_version_id: Mapped[uuid.UUID]
    # open | closed
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class QaCalibrationReviewer(TenantScoped, Base):
    """A reviewer (a user) invited to a calibration session."""

    __tablename__ = "qa_calibration_reviewers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "calibration_id", "reviewer_user_id"),
        _tenant_fk(["calibration_id"], "qa_calibrations"),
        _tenant_fk(["reviewer_user_id"], "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    calibration_id: Mapped[uuid.UUID]
    reviewer_user_id: Mapped[uuid.UUID] = mapped_column(index=True)


class QaEvaluation(TenantScoped, Base):
    """One reviewer's evaluation of one or several calls of one agent (docs/qa.md).

    draft -> submitted -> acknowledged | disputed -> (second review) final.  A calibration
    evaluation stops at submitted.  Scores are computed by the server from ``answers``
    (kefu.tenants.qa.scoring) when submitted or second-reviewed, never taken from clients.
    """

    __tablename__ = "qa_evaluations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        # One evaluation per reviewer and calibration session (NULLs never collide).
        UniqueConstraint("tenant_id", "calibration_id", "reviewer_user_id"),
        _tenant_fk(["scorecard_version_id"], "qa_scorecard_versions", cascade=False),
        _tenant_fk(["scorecard_id"], "qa_scorecards", cascade=False),
        _tenant_fk(["agent_id"], "agents", cascade=False),
        _tenant_fk(["reviewer_user_id"], "users", cascade=False),
        _tenant_fk(["second_reviewer_user_id"], "users", cascade=False),
        _tenant_fk(["queue_id"], "queues", cascade=False),
        _tenant_fk(["calibration_id"], "qa_calibrations", cascade=False),
        Index("ix_qa_evaluations_tenant_started", "tenant_id", "started_at"),
        Index("ix_qa_evaluations_tenant_agent_started", "tenant_id", "agent_id", "started_at"),
        Index("ix_qa_evaluations_tenant_submitted", "tenant_id", "submitted_at"),
        Index("ix_qa_evaluations_tenant_serials", "tenant_id", "start_serial", "end_serial"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scorecard_id: Mapped[uuid.UUID]
    scorecard_version_id: Mapped[uuid.UUID]
    # draft | submitted | acknowledged | disputed | final
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # random | targeted | complaint | new_hire | calibration | second_review
    qa_type: Mapped[str] = mapped_column(String(16))
    business_type: Mapped[str] = mapped_column(String(64))
    reviewer_user_id: Mapped[uuid.UUID]
    agent_id: Mapped[uuid.UUID]
    # The queue of the earliest covered call (searching by queue).
    queue_id: Mapped[uuid.UUID | None]
    # Serial numbers of the earliest and latest covered call (kefu.tenants.qa.calls.call_serial).
    start_serial: Mapped[str] = mapped_column(String(32))
    end_serial: Mapped[str] = mapped_column(String(32))
    # Sum of the covered calls' answered -> ended seconds.
    call_duration_s: Mapped[int] = mapped_column(Integer)
    # [{"question_id", "value": "yes"|"no"|"na"|int, "comment", "score": 0..100 | None}]
    answers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    comments: Mapped[str | None] = mapped_column(Text)
    total_score: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str | None] = mapped_column(String(16))
    auto_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Evaluation start (opened) and end (submitted) time.
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    disputed_at: Mapped[datetime | None]
    dispute_reason: Mapped[str | None] = mapped_column(String(2000))
    second_reviewer_user_id: Mapped[uuid.UUID | None]
    second_reviewed_at: Mapped[datetime | None]
    # upheld | changed
    second_review_outcome: Mapped[str | None] = mapped_column(String(16))
    second_review_comments: Mapped[str | None] = mapped_column(Text)
    # What the first reviewer gave, kept when the second review changed the answers.
    original_answers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    original_total_score: Mapped[float | None] = mapped_column(Float)
    original_grade: Mapped[str | None] = mapped_column(String(16))
    calibration_id: Mapped[uuid.UUID | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class QaEvaluationCall(TenantScoped, Base):
    """A call an evaluation covers."""

    __tablename__ = "qa_evaluation_calls"
    __table_args__ = (
        UniqueConstraint("tenant_id", "evaluation_id", "call_id"),
        _tenant_fk(["evaluation_id"], "qa_evaluations"),
        _tenant_fk(["call_id"], "calls"),
        Index("ix_qa_evaluation_calls_tenant_call", "tenant_id", "call_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    evaluation_id: Mapped[uuid.UUID]
    call_id: Mapped[uuid.UUID]


class QaSamplingPolicy(TenantScoped, Base):
    """N random calls per agent per period, filtered, assigned round-robin to reviewers
    (kefu.tenants.qa.sampling fills the work lists)."""

    __tablename__ = "qa_sampling_policies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "name"),
        _tenant_fk(["scorecard_id"], "qa_scorecards"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    scorecard_id: Mapped[uuid.UUID]
    qa_type: Mapped[str] = mapped_column(String(16), default="random")
    calls_per_agent: Mapped[int] = mapped_column(Integer)
    # day | week | month (in the tenant's time zone)
    period: Mapped[str] = mapped_column(String(8), default="week")
    min_duration_s: Mapped[int] = mapped_column(Integer, default=0)
    # Disposition codes a call must have one of (empty: any, with or without one).
    disposition_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    recorded_only: Mapped[bool] = mapped_column(Boolean, default=True)
    # Sampling is random across calls and reproducible: the order is a hash of seed and call id.
    seed: Mapped[int] = mapped_column(Integer)
    # Round-robin: the next new work item goes to reviewer number (counter mod reviewers).
    assigned_count: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QaSamplingPolicyQueue(TenantScoped, Base):
    """A queue a sampling policy takes calls from (none: every queue)."""

    __tablename__ = "qa_sampling_policy_queues"
    __table_args__ = (
        UniqueConstraint("tenant_id", "policy_id", "queue_id"),
        _tenant_fk(["policy_id"], "qa_sampling_policies"),
        _tenant_fk(["queue_id"], "queues"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    policy_id: Mapped[uuid.UUID]
    queue_id: Mapped[uuid.UUID] = mapped_column(index=True)


class QaSamplingPolicyReviewer(TenantScoped, Base):
    """A reviewer of a sampling policy, in round-robin order (``position``)."""

    __tablename__ = "qa_sampling_policy_reviewers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "policy_id", "reviewer_user_id"),
        _tenant_fk(["policy_id"], "qa_sampling_policies"),
        _tenant_fk(["reviewer_user_id"], "users"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    policy_id: Mapped[uuid.UUID]
    reviewer_user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    position: Mapped[int] = mapped_column(Integer)


class QaWorkItem(TenantScoped, Base):
    """A call on a reviewer's work list, sampled by a policy for one period.  The unique
    key (policy, period, call) makes filling a work list idempotent."""

    __tablename__ = "qa_work_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "policy_id", "period_start", "call_id"),
        _tenant_fk(["policy_id"], "qa_sampling_policies"),
        _tenant_fk(["call_id"], "calls"),
        _tenant_fk(["agent_id"], "agents"),
        _tenant_fk(["reviewer_user_id"], "users"),
        _tenant_fk(["evaluation_id"], "qa_evaluations", cascade=False),
        Index("ix_qa_work_items_tenant_reviewer_status", "tenant_id", "reviewer_user_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    policy_id: Mapped[uuid.UUID]
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    call_id: Mapped[uuid.UUID]
    agent_id: Mapped[uuid.UUID]
    reviewer_user_id: Mapped[uuid.UUID]
    # open | done
    status: Mapped[str] = mapped_column(String(8), default="open")
    evaluation_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]


class QaLibraryItem(TenantScoped, Base):
    """An exemplary call (典型案例) filed for training: excellent or instructive."""

    __tablename__ = "qa_library_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "call_id"),
        _tenant_fk(["call_id"], "calls"),
        Index("ix_qa_library_items_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    call_id: Mapped[uuid.UUID]
    # excellent | instructive
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    filed_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class QaLibraryTag(TenantScoped, Base):
    """A tag of a library item (lower-cased), one row each so browsing filters by tag in SQL."""

    __tablename__ = "qa_library_tags"
    __table_args__ = (
        UniqueConstraint("tenant_id", "item_id", "tag"),
        _tenant_fk(["item_id"], "qa_library_items"),
        Index("ix_qa_library_tags_tenant_tag", "tenant_id", "tag"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    item_id: Mapped[uuid.UUID]
    tag: Mapped[str] = mapped_column(String(64))
